#!/usr/bin/env bash
# Builds the Debian package: target/debian/fedgate_<version>-1_<arch>.deb.
#
#   packaging/build-deb.sh                 # release build, then package
#   packaging/build-deb.sh --profile dev --no-build
#                                          # package the debug binary already
#                                          # built by `cargo test` (what
#                                          # tests/packaging.rs does: no
#                                          # second compilation)
#   packaging/build-deb.sh --install-tools # only install cargo-deb
#
# Installs cargo-deb into ~/.cargo/bin if missing (pinned, --locked), writes
# the man pages and shell completions from the binary's own CLI into
# target/packaging/, and runs cargo-deb with [package.metadata.deb] of
# Cargo.toml. Prints the .deb's path on its last line.
set -euo pipefail

CARGO_DEB_VERSION=3.8.0
profile=release
build=1
tools_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --install-tools) tools_only=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$profile" in
    dev|debug) profile_dir=debug ;;
    *) profile_dir="$profile" ;;
esac
bin="$target_dir/$profile_dir/fedgate"

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb.sh: installing cargo-deb $CARGO_DEB_VERSION into ~/.cargo/bin" >&2
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
[ "$tools_only" = 1 ] && exit 0
if [ "$build" = 1 ]; then
    cargo build --profile "$profile" --bin fedgate
fi
[ -x "$bin" ] || { echo "build-deb.sh: $bin missing (build it, or drop --no-build)" >&2; exit 1; }

# Man pages and completions come from the CLI definition itself.
gen="$target_dir/packaging"
rm -rf "$gen"
mkdir -p "$gen/man" "$gen/completions"
"$bin" man --out "$gen/man" >/dev/null
gzip -9n "$gen"/man/*.1
"$bin" completions bash >"$gen/completions/fedgate.bash"
"$bin" completions zsh >"$gen/completions/_fedgate"
"$bin" completions fish >"$gen/completions/fedgate.fish"
# cargo-deb reads asset paths relative to the crate; with another target
# directory, link it where the assets say.
if [ "$target_dir" != "$root/target" ]; then
    mkdir -p "$root/target"
    ln -sfn "$gen" "$root/target/packaging"
fi

args=(--no-build --profile "$profile" --output "$target_dir/debian/")
# A test package: lighter compression (a debug binary is large).
[ "$profile_dir" = debug ] && args+=(--fast)
deb="$(cargo deb "${args[@]}" 2> >(grep -v 'dev profile is not supported\|cargo-deb is for making releases\|To enable debug symbols\|Cargo also supports custom profiles' >&2))"
echo "$deb"
