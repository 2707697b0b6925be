#!/usr/bin/env bash
# Runs the end-to-end suite: builds vmrund, vmrun-shim and vmrun into the same
# target directory as the tests, then `cargo test -p vmrun-e2e`.
#
#   tests/e2e/run.sh [cargo test args...]     e.g. run.sh --test api
#
# CARGO_TARGET_DIR is honoured (default: the workspace's target/). Tests need
# root; without it they print "skipping: ..." and pass. Daemons share the host
# bridge vmrun0, so the harness runs one daemon at a time (flock on
# /tmp/vmrun-e2e.lock); test threads just queue on it.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -p vmrun-daemon -p vmrun-shim -p vmrun --bins
exec cargo test -p vmrun-e2e --no-fail-fast "$@"
