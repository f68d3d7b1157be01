# Shared by scripts/dev and scripts/test: a virtualenv in .venv with the project installed.
# Reinstalls only when pyproject.toml changed since the last install.
set -e
# The caller names the extra in EXTRAS (dash's `.` passes no arguments to a sourced file).
EXTRAS=${EXTRAS:-test}
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)." >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.installed-$EXTRAS
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  touch "$stamp"
fi
