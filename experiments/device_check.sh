#!/usr/bin/env bash
# The device check in one command (benchmarks/device.py): run from the repository root on the GPU
# machine, with the wheels folder carried; writes device-check-<device>.json/.md and a log under OUT.
#
#   here, once:  experiments/device_check.sh --fetch-wheels        (soundfile + cffi + pycparser into wheels/)
#   there:       experiments/device_check.sh                       (OUT defaults to results/)
#   anywhere:    experiments/device_check.sh --dry-run             (CPU, small sizes: what the test suite runs)
#
# The GPU machine has Python 3.12 with jax (CUDA), flax, optax, orbax, numpy, scipy, scikit-learn and tqdm;
# soundfile (mp3 encode/decode) is the one missing package the check needs, carried as wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=wheels
PKGS=(soundfile==0.13.1 cffi==2.1.1 pycparser==3.12)

if [[ "${1:-}" == "--fetch-wheels" ]]; then
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WHEELS" "${PKGS[@]}"
  ls -l "$WHEELS"
  exit 0
fi

OUT="${OUT:-results}"
mkdir -p "$OUT"
if ! python3 -c "import soundfile" 2>/dev/null; then
  [[ -d "$WHEELS" ]] || { echo "device_check: soundfile is missing and there is no $WHEELS/ folder; run" \
    "'experiments/device_check.sh --fetch-wheels' where pip can download, and carry $WHEELS" >&2; exit 2; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# A fresh cache folder: the compile_cache section measures cold vs warm itself.
export VGGISH_JAX_CACHE_DIR="${VGGISH_JAX_CACHE_DIR:-/tmp/vggish-jax-cache}"
(nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv 2>/dev/null || true) | tee "$OUT/device-check-nvidia-smi.txt"
# At most 470 s: one device command may run 8 minutes, and the JSON is rewritten after every section.
timeout 470 python3 -m benchmarks --suite device --out "$OUT" "$@" 2>&1 | tee "$OUT/device-check.log"
