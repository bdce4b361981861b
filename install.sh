#!/usr/bin/env bash
# Install sweepd into ./.venv (or $SWEEPD_VENV): torch, PufferLib (built offline where GitHub is
# unreachable; see scripts/install_pufferlib.sh), sweepd itself. `--test` adds the test tools and
# Debian's chromium for the browser test. Re-running it is quick: built wheels are cached.
set -euo pipefail
cd "$(dirname "$0")"

VENV="${SWEEPD_VENV:-.venv}"
TEST=0
[[ "${1:-}" == "--test" ]] && TEST=1
say() { printf '[install] %s\n' "$*"; }

if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
        || { say "sweepd needs Python >= 3.11 (found $(python3 --version))"; exit 1; }
    say "creating $VENV"
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
# Exactly torch 2.13.0: a looser pin pulls the newest CUDA build (gigabytes) on CPU boxes.
"$PY" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null \
    || { say "installing torch==2.13.0"; "$PY" -m pip install -q "torch==2.13.0"; }
PYTHON="$PY" bash scripts/install_pufferlib.sh
extras="postgres,dashboard"
[[ $TEST == 1 ]] && extras="$extras,test"
say "installing sweepd[$extras]"
"$PY" -m pip install -q -e ".[$extras]"
if [[ $TEST == 1 ]] && ! command -v chromium >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]]; then
        say "installing Debian's chromium for the browser test"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null) \
            || say "chromium could not be installed: the browser test will be skipped"
    else
        say "chromium missing (apt-get install chromium as root): the browser test will be skipped"
    fi
fi
say "ready: $VENV/bin/sweepd"
