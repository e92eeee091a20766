#!/usr/bin/env bash
# Build the small wheelhouse that bench/device_check.sh installs on a GPU machine without network.
#
#   bash bench/make_wheelhouse.sh [PYTHON_VERSIONS...]      (default: 3.10 3.11 3.12)
#
# The device has PyTorch, JAX, CuPy, CPU ONNX Runtime and OpenCV, and lacks what lineguard adds on top:
# Keras 3 and its small dependencies, pydantic (model.json), simplejpeg (the CPU decode path) and PyYAML.
# Wheels land in build/wheelhouse/ (git-ignored; carried to the device with the run tool's `carry`), binary
# wheels for each Python version given, since the device's Python is not known in advance. The project
# itself needs no wheel: the check runs from the source tree (PYTHONPATH); `schemas` imports fastavro and
# confluent-kafka at import time, so their wheels come too. Measured: see the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/wheelhouse
mkdir -p "$OUT"
PIP="${PIP:-.venv/bin/pip}"
PURE="keras namex absl-py rich markdown-it-py mdurl pygments packaging annotated-types typing-inspection
typing-extensions pydantic"
BINARY="pydantic-core optree h5py ml-dtypes simplejpeg pyyaml fastavro confluent-kafka"
"$PIP" download -q --no-deps --only-binary=:all: -d "$OUT" $PURE
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.11 3.12)
for version in "${versions[@]}"; do
  for pkg in $BINARY; do
    "$PIP" download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
      --python-version "$version" --implementation cp -d "$OUT" "$pkg" \
      || echo "no $pkg wheel for Python $version"
  done
done
du -sh "$OUT" | sed 's/^/wheelhouse size: /'
