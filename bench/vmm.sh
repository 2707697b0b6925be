#!/usr/bin/env bash
# Benchmarks for the vmrun-vmm microVM monitor (issue 4). Not a test: prints numbers.
#  1. time from process start to the vCPU entering the guest: a raw guest that HLTs at once,
#     median of 50 runs (wall time of the whole process, and the VMM's own start->exit time);
#  2. VMM RSS with a 128 MiB, 1-vCPU guest that touched no memory (the guest spins on one
#     code page), minus that page;
#  3. boot to guest-agent-ready on hardware KVM (skipped on PVM hosts / without a kernel).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/target-vmm-bench}"
# The workspace's release-small profile (opt-level s, fat LTO, panic=abort, stripped): the
# profile a shipped vmrun-vmm is built with.
cargo build --profile release-small -q -p vmrun-vmm
BIN="$CARGO_TARGET_DIR/release-small/vmrun-vmm"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
printf '\xf4' > "$WORK/hlt.bin"
printf '\xeb\xfe' > "$WORK/spin.bin"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

if [ ! -r /dev/kvm ]; then echo "no /dev/kvm: nothing to measure"; exit 0; fi
[ -d /sys/module/kvm_pvm ] && echo "note: /dev/kvm is PVM (nested, emulated); numbers are not hardware-KVM numbers"

# 1. start-up
: > "$WORK/wall"; : > "$WORK/inner"
for _ in $(seq 50); do
  t0=$(date +%s%N)
  "$BIN" --raw-image "$WORK/hlt.bin" --memory-mib 128 --serial none --timing 2> "$WORK/err"
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000 )) >> "$WORK/wall"
  sed -n 's/.*exited_us=\([0-9]*\).*/\1/p' "$WORK/err" >> "$WORK/inner"
done
echo "start-up (HLT guest, 128 MiB, 1 vCPU), median of 50:"
echo "  process wall time, exec to exit:   $(median < "$WORK/wall") us"
echo "  in-process main() to HLT exit:     $(median < "$WORK/inner") us"

# 2. RSS, median of 5 runs
: > "$WORK/rss"
for _ in $(seq 5); do
  "$BIN" --raw-image "$WORK/spin.bin" --memory-mib 128 --serial none &
  pid=$!
  sleep 0.5
  # VmRSS anon file, and the proportional share (PSS) of the mappings.
  echo "$(awk '/^VmRSS:/ {r=$2} /^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {print r, a, f}' /proc/$pid/status) \
$(awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup)" >> "$WORK/rss"
  kill -TERM $pid; wait $pid || true
done
read -r rss_kib anon_kib file_kib pss_kib < <(sort -n "$WORK/rss" | sed -n 3p)
echo "RSS (128 MiB guest spinning on one 4 KiB code page), median of 5:"
echo "  VmRSS ${rss_kib} KiB (anon ${anon_kib}, file ${file_kib}; PSS ${pss_kib}); minus the guest page: $(( rss_kib - 4 )) KiB (target <= 3072)"

# 3. boot to agent-ready
if [ -d /sys/module/kvm_pvm ]; then
  echo "boot to agent-ready: skipped (PVM host cannot boot a stock kernel)"
elif [ -z "${VMRUN_TEST_KERNEL:-}" ]; then
  echo "boot to agent-ready: skipped (set VMRUN_TEST_KERNEL)"
else
  cargo test --release -q -p vmrun-vmm --test full_boot -- --nocapture 2>&1 | grep -E "agent ready|skipping" || true
fi
