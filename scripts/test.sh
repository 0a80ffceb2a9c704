#!/usr/bin/env bash
# Set everything up and run the whole test suite (unit, pages, real data, real browser).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
VENV="${TLVIZ_VENV:-.venv}"
if [ -z "${TLVIZ_DATA_DIR:-}" ] && [ -d ../shared/datasets ]; then
  export TLVIZ_DATA_DIR="$(cd ../shared/datasets && pwd)"
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-2}"
"$VENV/bin/ruff" check tlviz tests pages ui app.py bench
exec "$VENV/bin/python" -m pytest "$@"
