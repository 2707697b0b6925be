#!/usr/bin/env bash
# Builds the guest agent initramfs: the static `vmrun-agent` (/init) and `vmrun-shim`
# (glibc static-pie: only the x86_64-unknown-linux-gnu target exists here, no musl), packed
# by `vmrun-agent-initramfs` into ${XDG_CACHE_HOME:-$HOME/.cache}/vmrun/initramfs/<hash>/.
#
# Idempotent: cargo rebuilds only what changed and the archive is cached by content hash.
# Prints the initramfs path on stdout (progress on stderr), like kernel-config/build.sh.
#
#   installer/agent-initramfs.sh           build (or find) it, print its path
#   installer/agent-initramfs.sh --bins    build the static binaries, print their directory
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
target=x86_64-unknown-linux-gnu
bins="${CARGO_TARGET_DIR:-$repo/target}/$target/release"

printf 'agent-initramfs: building static vmrun-agent + vmrun-shim\n' >&2
RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols" cargo build --quiet --locked --release \
    --target "$target" -p vmrun-agent -p vmrun-shim >&2
if [ "${1:-}" = "--bins" ]; then
    echo "$bins"
    exit 0
fi
cargo run --quiet --locked -p vmrun-agent-client --bin vmrun-agent-initramfs -- \
    --agent "$bins/vmrun-agent" --shim "$bins/vmrun-shim"
