#!/usr/bin/env bash
# Create the project virtualenv and install the project into it: pip install -e '.[all]'.
# Nothing is installed into the interpreter itself (Debian 12 / Ubuntu >= 23.04 refuse that: PEP 668).
# Environment: PYTHON, the interpreter the virtualenv is made from (default python3, must be >= 3.11);
# VENV, where it goes (default .venv). Installs Debian's python3-venv when the interpreter lacks the
# venv module and we are root, else prints the command. Re-creates the virtualenv when it was made
# from another interpreter or is broken; otherwise only re-runs pip (called when pyproject.toml changed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

die() { echo "setup-venv: $*" >&2; exit 1; }

py=$(command -v "$PYTHON" 2>/dev/null) \
  || die "no interpreter '$PYTHON'; install Python >= 3.11 (Debian 12: apt-get install -y python3 python3-venv) or pass PYTHON=/path/to/python3.11"
ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
  || die "'$PYTHON' ($py) does not run; pass PYTHON=/path/to/python3.11 or newer"
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "'$PYTHON' is Python $ver, the harness needs >= 3.11: install python3.11 or newer (Debian 12: apt-get install -y python3 python3-venv; elsewhere e.g. pyenv install 3.11) and run: make setup PYTHON=python3.11"

# Debian and Ubuntu ship the venv module's ensurepip separately (python3-venv).
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  real=$(readlink -f "$py")
  if [[ $real != /usr/bin/python3* ]]; then
    die "'$PYTHON' ($real) has no venv/ensurepip module; use an interpreter that has it, e.g. PYTHON=/usr/bin/python3"
  fi
  pkg=python$ver-venv
  [[ $(readlink -f /usr/bin/python3 2>/dev/null) == "$real" ]] && pkg=python3-venv
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    die "'$PYTHON' has no venv module; run as root: apt-get update && apt-get install -y $pkg"
  fi
  echo "setup-venv: '$PYTHON' has no venv module; installing $pkg"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "$pkg"
  "$py" -c 'import venv, ensurepip' || die "installed $pkg but '$PYTHON' still has no venv/ensurepip module"
fi

# Same base interpreter and version as the one asked for? Otherwise (re)create the virtualenv.
probe='import sys; print(sys.base_prefix, sys.version)'
want=$("$py" -c "$probe")
have=$("$VENV/bin/python" -c "$probe" 2>/dev/null || true)
if [[ $have != "$want" ]]; then
  if [[ -n $have ]]; then
    echo "setup-venv: re-creating $VENV with $py (it was made from the Python in ${have%% *})"
  elif [[ -e $VENV ]]; then
    echo "setup-venv: re-creating $VENV with $py (its interpreter is missing or broken)"
  else
    echo "setup-venv: creating $VENV with $py (Python $ver)"
  fi
  "$py" -m venv --clear "$VENV"
fi

# --no-compile: byte-compiling every module of every package at install time (pyspark's thousands)
# took 31 of 80 s here; Python compiles what it imports, when it imports it
"$VENV/bin/python" -m pip install --quiet --no-compile --disable-pip-version-check -e '.[all]'
echo "setup-venv: $VENV ready (Python $ver from $py); activate it with: . $VENV/bin/activate"
