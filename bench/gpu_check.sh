#!/usr/bin/env bash
# One prepared device check (issue 10): on a fresh GPU machine with this repository, in < 8 min:
#   1. find a Python with torch (ACTORMATTE_PYTHON, .venv, or python3 with PYTHONPATH=core);
#      only where none exists and the network is there, run install.py --device cuda;
#   2. record nvidia-smi and `actormatte info --json` (which backend/precision would run, why);
#   3. pytest -m gpu (spconv vs torch on CUDA, MaGGIe/XMem CUDA vs CPU goldens at fp32/tf32/fp16,
#      chunked == single on CUDA); measured deviations go to $OUT/gpu_tests.json;
#   4. bench/gpu_bench.py: MaGGIe forward, XMem per frame, end to end 1080p 3 actors, per precision
#      -> $OUT/gpu_bench.json + gpu_bench.md; then $OUT/summary.md with everything.
# The device machine has no network: carry a built .venv or use a python3 that has torch.
# Needs the reference folder (goldens, weight generators): $ACTORMATTE_SHARED, ../shared or
# ./shared.
#
#   bench/gpu_check.sh                 # on the GPU machine (OUT defaults to ./gpu_check_out)
#   bench/gpu_check.sh --dry-run       # = --device cpu: the CPU-side parts at toy sizes, here
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) MODE=cpu ;;
    --device) shift; MODE=${1:-cuda} ;;
    --device=*) MODE=${1#--device=} ;;
    *) echo "gpu_check: unknown argument $1 (use --dry-run or --device cpu|cuda)" >&2; exit 2 ;;
  esac
  shift
done
OUT=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUT"
START=$(date +%s)
STEPS="$OUT/steps.txt"
: > "$STEPS"
step() {  # step NAME TIMEOUT_S CMD...: run, log to $OUT/NAME.log, record rc and seconds
  local name=$1 limit=$2; shift 2
  local t0 rc; t0=$(date +%s)
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; rc=$?
  echo "$name rc=$rc seconds=$(( $(date +%s) - t0 ))" | tee -a "$STEPS"
  tail -n 5 "$OUT/$name.log"
  return 0
}

has_torch() { "$1" -c "import torch" > /dev/null 2>&1; }
PY=${ACTORMATTE_PYTHON:-}
if [ -z "$PY" ] && [ -x .venv/bin/python ] && has_torch .venv/bin/python; then PY=.venv/bin/python; fi
if [ -z "$PY" ] && has_torch python3; then PY=python3; fi
if [ -z "$PY" ]; then
  echo "gpu_check: no Python with torch; running install.py (needs PyPI)"
  step install 300 python3 install.py --no-weights --device "$MODE"
  PY=.venv/bin/python
  has_torch "$PY" || { echo "gpu_check: install failed, see $OUT/install.log" >&2; exit 1; }
fi
export PYTHONPATH="$ROOT/core:$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}"
for dir in "${ACTORMATTE_SHARED:-}" "$ROOT/../shared" "$ROOT/shared"; do
  if [ -n "$dir" ] && [ -d "$dir/reference" ]; then export ACTORMATTE_SHARED=$(cd "$dir" && pwd); break; fi
done
echo "python: $PY ($("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)'))"
echo "reference: ${ACTORMATTE_SHARED:-MISSING (goldens and generated weights unavailable)}"

(nvidia-smi || echo "nvidia-smi: not available") > "$OUT/nvidia-smi.txt" 2>&1
"$PY" -m actormatte.cli.main info --json --device "$MODE" > "$OUT/info.json" 2> "$OUT/info.err"

export ACTORMATTE_GPU_REPORT="$OUT/gpu_tests.json"
if [ "$MODE" = cuda ]; then
  step pytest_gpu 240 "$PY" -m pytest -m gpu tests/device tests/matting tests/propagation -q -rA \
    -p no:cacheprovider --junitxml "$OUT/pytest_gpu.xml"
  step bench 200 "$PY" bench/gpu_bench.py --device cuda --out "$OUT"
else
  step pytest_cpu 240 "$PY" -m pytest tests/device/test_install_plan.py \
    tests/matting/test_sparse_spconv.py -q -p no:cacheprovider \
    -k "install or cuda_matrix or site_indices or detail_branch or backend_choice"
  step bench 400 "$PY" bench/gpu_bench.py --device cpu --quick --repeat 1 --out "$OUT" \
    --sections maggie,xmem
fi

{
  echo "# gpu_check ($MODE) $(date -u +%Y-%m-%dT%H:%M:%SZ), $(( $(date +%s) - START )) s"
  echo
  echo '```'; cat "$STEPS"; grep -h -E "passed|failed|error" "$OUT"/pytest_*.log | tail -n 3; echo '```'
  echo
  head -n 12 "$OUT/nvidia-smi.txt" | sed 's/^/    /'
  echo
  [ -f "$OUT/gpu_bench.md" ] && cat "$OUT/gpu_bench.md"
  [ -f "$OUT/gpu_tests.json" ] && { echo "## pytest -m gpu figures"; echo '```json'; cat "$OUT/gpu_tests.json"; echo '```'; }
} > "$OUT/summary.md"
echo "gpu_check: done in $(( $(date +%s) - START )) s; figures in $OUT/summary.md"
