#!/usr/bin/env bash
# Set up (or check) the project-local virtual environment with the tested version set.
# Idempotent: a second run with unchanged constraints.txt/pyproject.toml/tools/setup.sh returns at once.
#
#   tools/setup.sh                    default: mmcv-lite + our torchvision-backed kernels (no compiler)
#   tools/setup.sh --compiled-mmcv    build mmcv 2.1.0 with compiled ops from its sdist (CPU; CUDA
#                                     when a GPU and nvcc are present). ~25 min on 2 cores.
# Environment:
#   UNMIX_VENV=DIR        where the environment goes (default .venv)
#   UNMIX_TORCH="SPECS"   torch/torchvision to install instead of the pinned pair, e.g.
#                         "torch==2.14.1 torchvision==0.29.1" (see README, "Version matrix")
#   UNMIX_KEEP_TORCH=1    keep the torch/torchvision already in the environment (e.g. your CUDA build)
#   UNMIX_MMCV_WHEEL=F    install this prebuilt compiled-mmcv wheel (with --compiled-mmcv)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
VENV=${UNMIX_VENV:-.venv}
PYTHON=${PYTHON:-python3}
compiled=0
for arg in "$@"; do
  case "$arg" in
    --compiled-mmcv) compiled=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "tools/setup.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "[setup] $*"; }
key=$(cat constraints.txt pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.unmix-setup-$key-$compiled-${UNMIX_TORCH:-pinned}"
if [ -f "$stamp" ]; then
  say "environment $VENV is up to date (delete $stamp to force a re-install)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
py="$root/$VENV/bin/python"
[ -x "$py" ] || py="$VENV/bin/python"
pip() { "$py" -m pip --disable-pip-version-check "$@"; }
quiet() { grep -v -e '^WARNING: Location' -e '^\s*$' || true; }

say "build tools: setuptools<81 (mmcv's and mmengine's pkg_resources), wheel"
pip install -q -c constraints.txt "setuptools>=77.0.3,<81" wheel 2>&1 | quiet

torch_ok() { "$py" - <<'EOF' 2>/dev/null
import torch, torchvision, torchvision.ops
b = torch.tensor([[0., 0., 1., 1.]])
torchvision.ops.nms(b, torch.ones(1), 0.5)
EOF
}
if [ "${UNMIX_KEEP_TORCH:-0}" = 1 ]; then
  say "keeping the installed torch (UNMIX_KEEP_TORCH=1)"
  torch_ok || { say "ERROR: the installed torch/torchvision cannot run torchvision.ops.nms"; exit 1; }
else
  spec=${UNMIX_TORCH:-"torch==2.13.0 torchvision==0.28.0"}
  if torch_ok && [ -z "${UNMIX_TORCH:-}" ] && "$py" -c "import torch, torchvision, sys; sys.exit(not (torch.__version__.split('+')[0]=='2.13.0' and torchvision.__version__.split('+')[0]=='0.28.0'))"; then
    say "torch $("$py" -c 'import torch; print(torch.__version__)') already installed"
  else
    # A local CPU-only torch wheel on pip's find-links would win for torch==2.13.0, and PyPI's
    # torchvision cannot load against it (`operator torchvision::nms does not exist`). PyPI's
    # build runs on CPU and CUDA alike, so ignore the local find-links/config for this step.
    say "installing $spec from PyPI (about 4.8 GB with the CUDA libraries; a few minutes)"
    env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null "$py" -m pip --disable-pip-version-check \
      install -q $spec 2>&1 | quiet
    torch_ok || { say "ERROR: torch/torchvision installed but torchvision.ops.nms does not run"; exit 1; }
  fi
fi

if [ "$compiled" = 1 ]; then
  if "$py" -c "import mmcv._ext" 2>/dev/null; then
    say "compiled mmcv already installed"
  else
    pip uninstall -y -q mmcv-lite mmcv 2>/dev/null || true
    pip install -q ninja 2>&1 | quiet
    if [ -n "${UNMIX_MMCV_WHEEL:-}" ]; then
      say "installing compiled mmcv from $UNMIX_MMCV_WHEEL"
      pip install -q --no-deps "$UNMIX_MMCV_WHEEL" 2>&1 | quiet
    else
      cuda=0
      if command -v nvcc >/dev/null && "$py" -c "import torch,sys; sys.exit(not torch.cuda.is_available())"; then cuda=1; fi
      say "building mmcv==2.1.0 with compiled ops (CUDA: $cuda, MAX_JOBS=${MAX_JOBS:-$(nproc)}); ~25 min on 2 cores"
      MMCV_WITH_OPS=1 FORCE_CUDA=$cuda MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        pip install --no-build-isolation --no-deps mmcv==2.1.0 2>&1 | quiet | tail -3
    fi
    "$py" -c "import mmcv._ext" || { say "ERROR: mmcv installed without compiled ops (mmcv._ext missing)"; exit 1; }
  fi
else
  if "$py" -c "import importlib.metadata as m; m.version('mmcv-lite')" 2>/dev/null \
     || "$py" -c "import mmcv._ext" 2>/dev/null; then
    say "mmcv already installed ($("$py" -c 'import mmcv; print(mmcv.__version__)'))"
  else
    say "installing mmcv-lite==2.1.0 (pure Python; kernels come from torchvision via transfer/stack/mmcv_ext.py)"
    pip install -q --no-build-isolation -c constraints.txt mmcv-lite==2.1.0 2>&1 | quiet
  fi
fi

say "installing mmengine, mmdet, pycocotools, pandas and unmix itself (editable)"
pip install -q --no-build-isolation -c constraints.txt -e ".[test]" 2>&1 | quiet

say "checking the stack"
"$py" -c "
from transfer.stack import ensure_stack, mmcv_ops_kind
ensure_stack()
import mmdet.models, mmdet.datasets, mmdet.evaluation
print('[setup] ok: mmcv ops =', mmcv_ops_kind())
"
rm -f "$VENV"/.unmix-setup-*
touch "$stamp"
say "done: $VENV"
