#!/usr/bin/env bash
# Builds fedgate (release, only when sources changed) and runs `fedgate demo`:
# a throwaway PKI, an echo upstream standing in for Keystone, fedgate in
# front on https://localhost:8443 (admin http://127.0.0.1:9090). Ctrl-C stops.
#
#   scripts/demo.sh [--listen ADDR:PORT] [--admin-listen ADDR:PORT]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust >= 1.85 (rustup.rs)" >&2; exit 2; }
cargo build --release --bin fedgate >&2
exec target/release/fedgate demo "$@"
