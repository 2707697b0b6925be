#!/usr/bin/env bash
# Runs each vmrun-vmm fuzz target for a bounded time and prints runs / coverage per target.
# Not run in CI. Usage: fuzz/run.sh [seconds per target, default 60] [target...]
#
# Needs no nightly toolchain: cargo-fuzz's -Z flags are accepted by the stable compiler with
# RUSTC_BOOTSTRAP=1. cargo-fuzz is installed (once) into the tools cache below; the build,
# the corpus and any crash artifacts live in the cache too, never in the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."   # host/vmm: cargo-fuzz finds fuzz/ from here

SECS="${1:-60}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(vsock_header vsock_handshake blk_request)

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/vmrun"
TOOLS="$CACHE/tools"
WORK="$CACHE/fuzz"
export PATH="$TOOLS/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz into $TOOLS" >&2
  cargo install cargo-fuzz --locked --root "$TOOLS" >&2
fi

export RUSTC_BOOTSTRAP=1
TARGET_DIR="${VMRUN_FUZZ_TARGET_DIR:-$WORK/target}"
mkdir -p "$WORK/logs"

# A few valid inputs to start from (the fuzzer keeps what it finds next to them).
seed() { # target name bytes(printf format)
  mkdir -p "$WORK/corpus/$1"
  [ -e "$WORK/corpus/$1/$2" ] || printf "$3" > "$WORK/corpus/$1/$2"
}
seed vsock_handshake connect 'CONNECT 1024\n'
seed vsock_handshake connect_crlf 'CONNECT 52\r\nhello'
# src_cid 3, dst_cid 2, ports 1024/52, len 0, type STREAM, op REQUEST, buf_alloc 256 KiB.
seed vsock_header request '\003\0\0\0\0\0\0\0\002\0\0\0\0\0\0\0\0\004\0\0\064\0\0\0\0\0\0\0\001\0\001\0\0\0\0\0\0\0\004\0\0\0\0\0'
# type IN, sector 1; nothing readable after the header, 4096 bytes writable; 64-sector disk.
seed blk_request read '\0\0\0\0\0\0\0\0\001\0\0\0\0\0\0\0\0\0\0\0\0\020\0\0\100\0\0\0\0\0\0\0\0'

status=0
for target in "${TARGETS[@]}"; do
  mkdir -p "$WORK/artifacts/$target"
  log="$WORK/logs/$target.log"
  echo "== $target: ${SECS}s (log: $log)"
  if ! cargo fuzz run --target-dir "$TARGET_DIR" "$target" "$WORK/corpus/$target" -- \
      -max_total_time="$SECS" -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$WORK/artifacts/$target/" > "$log" 2>&1; then
    status=1
    echo "   FAILED: see $log and $WORK/artifacts/$target/"
  fi
  # libFuzzer's last status line: "#RUNS DONE cov: EDGES ft: FEATURES corp: N/SIZE ...".
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | sed 's/^/   /' || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" \
    | sed 's/^/   /' || true
done
exit $status
