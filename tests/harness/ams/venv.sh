#!/bin/sh
# Creates (once) the venv with argo-ams-library, the Python client APEL's
# ssmsend publishes with, for the envelope comparison in tests/ams.rs.
# Prints the venv's python on stdout. Idempotent; ~20 s on first run.
set -eu
VENV="${FEDGATE_AMS_VENV:-$HOME/.cache/fedgate/ams-venv}"
VERSION="${ARGO_AMS_LIBRARY_VERSION:-1.0.0}"
if ! "$VENV/bin/python" -c "import argo_ams_library" 2>/dev/null; then
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "argo-ams-library==$VERSION" >&2
fi
echo "$VENV/bin/python"
