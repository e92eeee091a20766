#!/usr/bin/env bash
# The prepared device check of issue 17: on an NVIDIA machine without network, run the worker's decode +
# preprocess + inference stages on generated 1280x1024 JPEG frames for every backend there and print
# frames/s, batch latency and GPU utilisation (bench/bench_device.py does the measuring).
#
#   bash bench/device_check.sh [--quick] [--mode cpu|gpu|auto] [bench_device.py options...]
#
# Expects on the machine: Python 3 with PyTorch, JAX, CuPy, CPU ONNX Runtime, OpenCV, numpy (no TensorFlow,
# no Java). What it lacks comes from build/wheelhouse (bash bench/make_wheelhouse.sh here, then carry
# build/wheelhouse): keras, pydantic, simplejpeg, PyYAML, fastavro, confluent-kafka and their small deps.
# The project runs from this source tree (PYTHONPATH), nothing is installed system-wide: a venv with the
# system site-packages sees the machine's frameworks. Figures go to stdout and to $OUT/device_check.json.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-/tmp/lineguard-device-check}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"

echo "== host"
"$PY" --version
nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu --format=csv,noheader \
  || echo "nvidia-smi: not found (no GPU figures)"
nproc

VENV="${VENV:-/tmp/lineguard-device-venv}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV"
VPY="$VENV/bin/python"

echo "== install what the machine lacks (offline, from build/wheelhouse)"
for module_pkg in keras:keras pydantic:pydantic simplejpeg:simplejpeg yaml:pyyaml fastavro:fastavro \
                  confluent_kafka:confluent-kafka; do
  module="${module_pkg%%:*}"; pkg="${module_pkg##*:}"
  if "$VPY" -c "import $module" 2>/dev/null; then
    echo "present: $pkg"
  elif [ -d build/wheelhouse ]; then
    "$VPY" -m pip install -q --no-index --find-links build/wheelhouse "$pkg" && echo "installed: $pkg" \
      || echo "MISSING: $pkg (no wheel for this Python in build/wheelhouse)"
  else
    echo "MISSING: $pkg (no build/wheelhouse carried)"
  fi
done
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== frameworks"
"$VPY" - <<'PYEOF'
import importlib
for name in ("torch", "torchvision", "jax", "cupy", "onnxruntime", "cv2", "keras"):
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        print(f"{name}: not importable ({type(exc).__name__})")
        continue
    extra = ""
    if name == "torch":
        extra = f" cuda={module.cuda.is_available()} devices={module.cuda.device_count()}"
    if name == "jax":
        extra = f" devices={[d.platform for d in module.devices()]}"
    if name == "onnxruntime":
        extra = f" providers={module.get_available_providers()}"
    print(f"{name} {getattr(module, '__version__', '?')}{extra}")
from workers.backends.gpu_decode import gpu_decode_support
print("gpu decode:", gpu_decode_support())
PYEOF

echo "== stages (decode + preprocess + inference) per backend"
# --mode gpu: ONNX Runtime asks for CUDA (falls back to its CPU provider, with one warning, without
# onnxruntime-gpu) and every Keras backend places the model on its GPU; nvJPEG decode where torchvision has it.
MODE_ARGS=(--mode gpu)
for arg in "$@"; do [ "$arg" = "--mode" ] && MODE_ARGS=(); done
"$VPY" bench/bench_device.py "${MODE_ARGS[@]}" --json "$@" | tee "$OUT_DIR/device_check.json"
status=${PIPESTATUS[0]}
echo "== summary"
"$VPY" - "$OUT_DIR/device_check.json" <<'PYEOF'
import json, sys
report = json.load(open(sys.argv[1]))
for row in report["results"]:
    print(" ".join(f"{k}={v}" for k, v in row.items()))
PYEOF
exit "$status"
