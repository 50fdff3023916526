#!/usr/bin/env bash
# Sets up what blockgate needs beyond node_modules, idempotently and fast when done:
#   - bubblewrap, the local isolation layer (Debian package; installed when root)
#   - .venv with the Python runtime's requirements (template/requirements*.txt)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing bubblewrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
  else
    say "bubblewrap (bwrap) is missing: install it with your package manager (e.g. apt-get install bubblewrap)"
  fi
fi

python=${BLOCKGATE_SETUP_PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
  say "need Python >= 3.10 as '$python' (set BLOCKGATE_SETUP_PYTHON to another interpreter)" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$python" -m venv .venv
fi

# Reinstall only when a requirements file changed since the last successful install.
stamp=.venv/.blockgate-requirements
wanted=$(cat template/requirements.txt template/requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  say "installing Python requirements into .venv"
  .venv/bin/python -m pip install --disable-pip-version-check -q -r template/requirements-dev.txt
  echo "$wanted" >"$stamp"
fi
say "ready"
