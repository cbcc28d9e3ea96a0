#!/usr/bin/env bash
# Python environment for benches/peers.py and benches/torch_baseline.py (make bench): torch
# (current, from PyPI), safetensors (to load mmnet's weights file), deepod installed with
# --no-deps (it pins torch<1.13.1, which no longer installs on Python 3.11; its DevNet and
# DeepSAD run on current torch), pyod for IsolationForest. ~6 GB (PyPI's torch wheel brings
# the CUDA libraries even though only the CPU is used). Not needed by make test or make demo.
set -euo pipefail
VENV=${1:-.tools/peers-venv}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import torch, deepod, pyod, pyarrow, sklearn, safetensors" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.15.0 safetensors pyod scikit-learn scipy pandas tqdm pyarrow
"$VENV/bin/pip" install -q --no-deps deepod==0.4.1
"$VENV/bin/python" -c "import torch, deepod, pyod; print('peers env: torch', torch.__version__, 'deepod', deepod.__version__)"
