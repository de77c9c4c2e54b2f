#!/usr/bin/env bash
# Sets omnizone up on a fresh Debian/Ubuntu machine with Python 3.11+:
# Mosquitto, Chromium and PostgreSQL (apt, only when missing), a virtualenv in .venv,
# omnizone with every extra.
# Safe to run again. Runs as root or with sudo for the apt step.
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup.sh: omnizone needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi

packages=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || packages+=(mosquitto)
"$python" -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
# Headless Chromium for the browser tests (driven by Playwright, docs/shopper-app.md).
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
# PostgreSQL's binaries: the tests start a private server of their own (tests/postgres_instance.py).
command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || packages+=(postgresql)
if [ ${#packages[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup.sh: installing ${packages[*]} with apt"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
.venv/bin/omnizone --help >/dev/null
echo "setup.sh: ready. Run the demo with: .venv/bin/omnizone demo"
