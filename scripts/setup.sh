#!/usr/bin/env bash
# Set up nora_ros on a fresh machine without ROS: Debian's OSMesa for CPU rendering (when root),
# a virtual environment, the CPU build of torch (pinned: an unpinned torch pulls GBs of CUDA
# packages) and the package with its extras. Idempotent; used by README's quick start and .ci/run.
#   usage: bash scripts/setup.sh [VENV_DIR] [EXTRAS]     (defaults: .venv  model,sim,bag,console,test)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
EXTRAS="${2:-model,sim,bag,console,test}"

if ! dpkg -s libosmesa6 >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing libosmesa6 (MuJoCo's CPU renderer)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libosmesa6 >/dev/null
    else
        echo "setup: libosmesa6 is missing and cannot be installed here (not root or no apt):" >&2
        echo "       the simulator will run without camera images until it is installed" >&2
    fi
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q torch==2.13.0
"$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
echo "setup: ready in $VENV (activate with: . $VENV/bin/activate)"
