#!/usr/bin/env bash
# Benchmarks for the vmrun-vmm microVM monitor (issue 4). Not a test: prints numbers.
#  1. time from process start to the vCPU entering the guest: a raw guest that HLTs at once,
#     median of 50 runs (wall time of the whole process, and the VMM's own start->exit time);
#  2. VMM RSS with a 128 MiB, 1-vCPU guest that touched no memory (the guest spins on one
#     code page), minus that page;
#  3. boot to guest-agent-ready (launch -> first vsock round trip with the guest's init) through
#     the VmBackend seam: our VMM (skipped on PVM hosts / without a kernel), then QEMU for
#     reference;
#  4. on PVM hosts: the same boot inside the nested KVM host (kvm-amd under QEMU TCG), our VMM
#     next to QEMU -accel kvm on the same emulated hardware.
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

# shellcheck source=bench/lib/numbers.sh
. bench/lib/numbers.sh

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

# 3. boot to agent-ready: host/vm/examples/boot_to_ready.rs launches the kernel-config/ kernel
#    with the echo initramfs through the VmBackend seam and times launch -> first vsock round
#    trip. It prints "skipping: <reason>" (and exits 0) where the backend cannot run (PVM
#    /dev/kvm) or the guest kernel is not built (kernel-config/build.sh).
cargo build --release -q -p vmrun-vm --example boot_to_ready
BOOT="$CARGO_TARGET_DIR/release/examples/boot_to_ready"
# Runs the example; its summary (or skip line) on stdout, each run's time in $WORK/boot.err
# (shown when it fails).
boot_to_ready() {
  "$BOOT" "$@" 2> "$WORK/boot.err" || { sed 's/^/  /' "$WORK/boot.err" >&2; return 1; }
}
echo "boot to agent-ready, our VMM (target <= 80 ms; Firecracker <= 125 ms to init):"
out="$(boot_to_ready --backend vmm --vmm-binary "$BIN" --runs 20)"
echo "  $out"
echo "boot to agent-ready, QEMU for reference:"
out="$(boot_to_ready --backend qemu --runs 5)"
echo "  $out"
case "$out" in
  *", tcg)"*) echo "  note: QEMU runs under TCG (emulated) here: not comparable to the target" ;;
esac

# 4. The same boot on real KVM one level down, where this host's KVM cannot boot Linux (PVM):
#    inside the nested KVM host (Debian kernel + kvm-amd under QEMU TCG with SVM,
#    tests/kvmhost), our VMM and QEMU (`-M microvm -accel kvm`) boot the same kernel and echo
#    initramfs on the same emulated hardware. Regression figures and a side-by-side ratio of
#    the two monitors, not performance claims: every guest instruction is emulated by TCG.
if [ -d /sys/module/kvm_pvm ]; then
  cargo build --release -q -p vmrun-kvmhost --example kvmhost_run
  RUNNER="$CARGO_TARGET_DIR/release/examples/kvmhost_run"
  KERNEL="$(kernel-config/build.sh --path)"
  "$BOOT" --write-initrd "$WORK/echo.cpio"
  # shellcheck source=installer/tools.sh
  . installer/tools.sh
  VHOST="$(command -v vhost-device-vsock || echo "$VMRUN_TOOLS_DIR/bin/vhost-device-vsock")"
  qemu_files=()
  for f in qboot.rom pvh.bin linuxboot_dma.bin; do
    qemu_files+=(--file "/usr/share/qemu/$f:/usr/share/qemu/$f")
  done
  echo "boot to agent-ready on nested KVM (kvm-amd under QEMU TCG; accelerator: nested KVM on TCG), median of 5:"
  nested="$("$RUNNER" --timeout 600 \
    --binary "$BOOT:/b/boot_to_ready" --binary "$BIN:/b/vmrun-vmm" \
    --binary "$(command -v qemu-system-x86_64):/usr/bin/qemu-system-x86_64" \
    --binary "$VHOST:/usr/bin/vhost-device-vsock" "${qemu_files[@]}" \
    --file "$KERNEL:/k/vmlinux" --file "$WORK/echo.cpio:/k/echo.cpio" \
    --env VMRUN_TEST_KERNEL=/k/vmlinux -- \
    'for b in vmm qemu; do echo "$b: $(/b/boot_to_ready --backend $b --vmm-binary /b/vmrun-vmm --initrd /k/echo.cpio --runs 5)"; done' \
    2> "$WORK/nested.err")" || { sed 's/^/  /' "$WORK/nested.err" >&2; nested=""; }
  echo "$nested" | sed 's/^/  /'
  vmm_ms=$(echo "$nested" | sed -n 's/^vmm: median \([0-9.]*\) ms.*/\1/p')
  qemu_ms=$(echo "$nested" | sed -n 's/^qemu: median \([0-9.]*\) ms.*/\1/p')
  if [ -n "$vmm_ms" ] && [ -n "$qemu_ms" ]; then
    echo "  our VMM / QEMU (same kernel, same nested KVM): $(awk -v a="$vmm_ms" -v b="$qemu_ms" 'BEGIN {printf "%.2f", a / b}')x"
  fi
fi
