#!/usr/bin/env bash
# Runs each vmrun-vmm fuzz target for a bounded time (default 60 s each). Not run in CI.
# Needs cargo-fuzz and a nightly toolchain: `cargo install cargo-fuzz`, `rustup toolchain
# install nightly`.
set -euo pipefail
cd "$(dirname "$0")"
SECS="${1:-60}"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz with a nightly toolchain is not available; install them to fuzz" >&2
  exit 1
fi
for target in vsock_header vsock_handshake; do
  cargo +nightly fuzz run "$target" -- -max_total_time="$SECS"
done
