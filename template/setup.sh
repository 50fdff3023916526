#!/usr/bin/env bash
# Sets up what blockgate needs beyond node_modules, idempotently and fast when done:
#   - bubblewrap, the local isolation layer, and the test-only openssl, redis-server, haproxy and
#     chromium (Debian packages; installed when root)
#   - .venv with the Python runtime's requirements (template/requirements*.txt)
#   - .venv-client with the Python client installed as a user would (clients/python)
#   - .wheelhouse/code-interpreter: the wheels code-interpreter mode installs in E2B's stock
#     code-interpreter-v1 sandboxes, which have no internet (template/code-interpreter/wheelhouse.txt)
#   - .venv-code-interpreter: the E2B stand-in's copy of that template's Python environment
#     (template/code-interpreter/stock-requirements.txt, on a Python 3.13), built once per
#     machine into a cache (BLOCKGATE_CACHE_DIR, else ~/.cache/blockgate) and linked here
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

# System packages: bubblewrap isolates local workers; openssl makes the throwaway TLS
# certificates of the E2B stand-in's Host-routed edge (tests only); redis-server and haproxy
# let the multi-instance tests run a real Redis and a real balancer in front of several
# instances (in production Redis is optional and the balancer is the user's own).
missing=""
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
# Debian puts haproxy in /usr/sbin, which is not on a user's PATH.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing="$missing haproxy"
# Chromium (headless) renders GET /docs in the tests, as a user's browser would.
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    say "missing:$missing: install with your package manager (e.g. apt-get install$missing)"
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

# .venv-client: the Python client as a user installs it (pip install ./clients/python), in a
# venv of its own so its tests prove its declared dependencies are enough. Reinstalled when the
# client or the codecs it packages (serializers/) change.
stamp=.venv-client/.blockgate-client
wanted=$( (find clients/python/pyproject.toml clients/python/src serializers -type f \( -name '*.py' -o -name '*.toml' \) | sort | xargs cat; cat template/requirements.txt) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  say "installing the Python client into .venv-client"
  [ -x .venv-client/bin/python ] || "$python" -m venv .venv-client
  # Its dependencies constrained to the runtime's pins (the same numpy, OpenCV, supervision, from
  # pip's cache), then the client itself rebuilt: its version does not change with serializers/.
  .venv-client/bin/python -m pip install --disable-pip-version-check -q \
    -c template/requirements.txt './clients/python[test]'
  .venv-client/bin/python -m pip install --disable-pip-version-check -q --force-reinstall --no-deps \
    ./clients/python
  echo "$wanted" >"$stamp"
fi

# The stock code-interpreter-v1 template runs CPython 3.13 on x86_64 (its image is python:3.13).
stock_python_version=3.13
lock=template/code-interpreter/wheelhouse.txt

# The wheelhouse: exactly the pinned, hashed wheels of $lock, for the sandbox's Python and
# platform (manylinux up to glibc 2.36: the stand-in's hosts and E2B's sandboxes both load them).
wheelhouse=.wheelhouse/code-interpreter
wanted=$(sha256sum "$lock" | cut -d' ' -f1)
if [ "$(cat "$wheelhouse/.blockgate-lock" 2>/dev/null)" != "$wanted" ]; then
  say "downloading the code-interpreter wheelhouse ($lock)"
  platforms=(--platform manylinux1_x86_64 --platform manylinux2010_x86_64 --platform manylinux2014_x86_64)
  for glibc in $(seq 5 36); do platforms+=(--platform "manylinux_2_${glibc}_x86_64"); done
  rm -rf "$wheelhouse.partial"
  .venv/bin/python -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
    --require-hashes --python-version "$stock_python_version" --implementation cp \
    --abi "cp${stock_python_version/./}" "${platforms[@]}" -d "$wheelhouse.partial" -r "$lock"
  echo "$wanted" >"$wheelhouse.partial/.blockgate-lock"
  rm -rf "$wheelhouse"
  mv "$wheelhouse.partial" "$wheelhouse"
fi

# The stand-in's stock environment: a Python 3.13 venv with what the stock template installs.
find_stock_python() {
  local candidate
  for candidate in "${BLOCKGATE_CODE_INTERPRETER_PYTHON:-}" python3.13 \
    "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.13*/bin/python3.13; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c "import sys, venv; sys.exit(sys.version_info[:2] != (3, 13))" 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}
if ! stock_python=$(find_stock_python); then
  say "no Python $stock_python_version found (set BLOCKGATE_CODE_INTERPRETER_PYTHON): the E2B stand-in's code-interpreter-v1 sandboxes will not start" >&2
else
  cache=${BLOCKGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/blockgate}
  key=$( (cat template/code-interpreter/stock-requirements.txt; readlink -f "$stock_python"; "$stock_python" -VV) | sha256sum | cut -c1-16)
  stock_venv=$cache/code-interpreter-$key
  mkdir -p "$cache"
  if [ ! -e "$stock_venv/.blockgate-complete" ]; then
    exec 9>"$cache/.lock"
    flock 9 # another checkout may be building the same one
    if [ ! -e "$stock_venv/.blockgate-complete" ]; then
      say "building the stock code-interpreter environment in $stock_venv (once per machine; minutes)"
      rm -rf "$stock_venv"
      "$stock_python" -m venv "$stock_venv"
      "$stock_venv/bin/python" -m pip install --disable-pip-version-check -q --only-binary=:all: \
        -r template/code-interpreter/stock-requirements.txt
      touch "$stock_venv/.blockgate-complete"
    fi
    exec 9>&-
  fi
  if [ "$(readlink .venv-code-interpreter 2>/dev/null)" != "$stock_venv" ]; then
    rm -rf .venv-code-interpreter
    ln -s "$stock_venv" .venv-code-interpreter
  fi
fi
say "ready"
