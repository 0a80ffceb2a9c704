#!/usr/bin/env bash
# Set everything up and open the dashboard (offline: the embedded digits dataset is the default).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${TLVIZ_VENV:-.venv}"
if [ -z "${TLVIZ_DATA_DIR:-}" ] && [ -d ../shared/datasets ]; then
  export TLVIZ_DATA_DIR="$(cd ../shared/datasets && pwd)"
fi
exec "$VENV/bin/streamlit" run app.py "$@"
