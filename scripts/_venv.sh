# Sourced by the scripts: make sure .venv exists and holds the project with its extras.
# Re-installs only when pyproject.toml changed (a stamp file records its hash).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
pick_python() {
  for c in python3.11 python3.12 python3.13 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  echo "afterchain needs Python >= 3.11 on PATH" >&2; return 1
}
ensure_venv() {
  local extras="${1:-dev}"
  local py
  if [[ ! -x .venv/bin/python ]]; then
    py="$(pick_python)"
    echo "creating .venv with $("$py" --version)" >&2
    "$py" -m venv .venv
  fi
  local want
  want="$(cat pyproject.toml | sha256sum | cut -c1-16)-$extras"
  if [[ ! -f .venv/.afterchain-installed ]] || [[ "$(cat .venv/.afterchain-installed)" != "$want" ]]; then
    echo "installing afterchain[$extras] into .venv (first run takes a minute)" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]" >&2
    echo "$want" > .venv/.afterchain-installed
  fi
  # Byte-compile the project's own sources, as installing a wheel does: the editable install
  # leaves them as source, and where PYTHONDONTWRITEBYTECODE is set (scripts/test sets it)
  # every node process compiled them again at start. Up-to-date files are skipped. Best
  # effort: without the .pyc files everything still runs, from source.
  if ! .venv/bin/python -m compileall -q node protocol consensus >/dev/null; then
    echo "note: could not byte-compile node/, protocol/ and consensus/ (nodes compile them at each start)" >&2
  fi
}
