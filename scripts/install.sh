#!/usr/bin/env bash
# Install what the toolbox needs (CPU or GPU machine). PyTorch is pinned to the
# version this project is tested with; everything else comes from requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements.txt
