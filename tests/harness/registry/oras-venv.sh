#!/usr/bin/env bash
# Prints the Python of a venv holding oras (PyPI, pinned), creating it when
# missing: ${FEDGATE_ORAS_VENV:-~/.cache/fedgate/oras-venv}.
set -euo pipefail
venv=${FEDGATE_ORAS_VENV:-$HOME/.cache/fedgate/oras-venv}
if ! "$venv/bin/python" -c 'import oras.client' >/dev/null 2>&1; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q 'oras==0.2.43' >&2
fi
echo "$venv/bin/python"
