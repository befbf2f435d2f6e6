#!/usr/bin/env bash
# Create (once) and reuse .venv-checkov, a venv of its own for checkov: its pinned
# dependency tree must not touch the app's .venv. Prints the checkov binary path.
#   devtools/ensure_checkov.sh            -> .venv-checkov/bin/checkov
#   CHECKOV_VERSION=3.3.30 (default)      -> pip install checkov==$CHECKOV_VERSION
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CHECKOV_VENV:-$repo_root/.venv-checkov}"
version="${CHECKOV_VERSION:-3.3.30}"
python="${PYTHON:-python3}"
stamp="$venv/.checkov-$version"

if [[ ! -f "$stamp" ]]; then
  echo "ensure_checkov: installing checkov==$version into $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "checkov==$version" >&2
  touch "$stamp"
fi
echo "$venv/bin/checkov"
