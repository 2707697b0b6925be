#!/usr/bin/env bash
# VM-mode benchmark (issue 9). Not a test: prints numbers, each with the monitor and the
# accelerator it ran on.
#
# Usage: bench/vm.sh [--bin-dir DIR] [--runs N]   (as root)
#
#   --bin-dir DIR  where vmrund, vmrun-shim, vmrun and vmrun-vmm are (env VMRUN_BIN_DIR).
#                  Default: ${CARGO_TARGET_DIR:-REPO/target}/release, built if missing.
#   --runs N       measured runs per figure (default 10; VMs under TCG take seconds each).
#
# 1. On this host, a private vmrund (`--vm-memory 512`) with the VM backend `auto` picks
#    (our VMM on hardware KVM, else QEMU: TCG where /dev/kvm cannot boot Linux):
#    a. shared VM boot to agent-ready: `vmrun vm start` after `vmrun vm stop` (launch, boot,
#       agent hello, data disk mounted), median of 3;
#    b. `vmrun run --rm busybox true` natively (the bench/e2e.sh figure, measured here
#       again), in the running shared VM, and in a microVM of its own (`--isolation vm`:
#       boot, disks, container, exit, all inside the timing), medians of N;
#    c. the agent's RSS when idle, as it reports it (`vmrun vm status`; target <= 5 MiB).
# 2. Where /dev/kvm cannot boot Linux (PVM): 1b through our own VMM inside the nested KVM
#    host (kvm-amd under QEMU TCG, tests/kvmhost): regression figures, not performance.
#
# Targets on hardware KVM, which no machine here has: boot to agent-ready <= 80 ms (see
# bench/vmm.sh for the bare boot), per-container `run --rm` <= 300 ms (Kata with shim v2
# takes about 800 ms). The script measures the same things there unchanged.
set -euo pipefail
export LC_ALL=C

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
RUNS=10
BIN_DIR=${VMRUN_BIN_DIR:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) BIN_DIR=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "vm.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "vm.sh: --runs must be a positive integer" >&2; exit 2; }
die() { echo "vm.sh: $*" >&2; exit 1; }
[ "$EUID" -eq 0 ] || die "needs root"

# shellcheck source=bench/lib/binaries.sh
. "$ROOT_DIR/bench/lib/binaries.sh"
ensure_binaries vmrund vmrun-shim vmrun vmrun-vmm

# shellcheck source=bench/lib/processes.sh
. "$ROOT_DIR/bench/lib/processes.sh"
D=$(mktemp -d /tmp/vmb.XXXXXX)
SOCK=$D/d.sock
BRIDGE=${D##*/}; BRIDGE=${BRIDGE//./-}
PID=
cleanup() {
    set +e
    [ -n "$PID" ] && stop_pid "$PID" 20
    ip link del "$BRIDGE" 2>/dev/null
    umount "$D/run/netns" 2>/dev/null
    rm -rf "$D"
}
trap cleanup EXIT INT TERM

# shellcheck source=bench/lib/numbers.sh
. "$ROOT_DIR/bench/lib/numbers.sh"
# Milliseconds `"$@"` takes, which must succeed.
ms() {
    local t0 t1
    t0=$EPOCHREALTIME
    "$@" >"$D/out" 2>&1 || { cat "$D/out" >&2; die "failed: $*"; }
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f\n", (b - a) * 1000}'
}
vmrun() { "$BIN_DIR/vmrun" -H "unix://$SOCK" "$@"; }
# The median of N timed runs of a command.
median_of() {
    local n=$1; shift
    for _ in $(seq "$n"); do ms "$@"; done | median
}

"$ROOT_DIR/installer/make-busybox-image.sh" "$D/busybox.tar" >/dev/null
"$BIN_DIR/vmrund" --host "unix://$SOCK" --data-root "$D/data" --exec-root "$D/run" \
    --shim "$BIN_DIR/vmrun-shim" --vmm "$BIN_DIR/vmrun-vmm" --bridge "$BRIDGE" \
    --vm-memory 512 --vm-disk-size 8 >"$D/vmrund.log" 2>&1 &
PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
vmrun load -i "$D/busybox.tar" >/dev/null
if ! status=$(vmrun vm status 2>&1); then
    echo "no VM backend here: $status"
    exit 0
fi
backend=$(awk '/^Backend:/ {print $2}' <<<"$status")
accel=$(awk '/^Accelerator:/ {print $2}' <<<"$status")
echo "VM figures on this host: backend $backend, accelerator $accel${accel:+ }$( [ "$accel" = tcg ] && echo '(emulated: regression numbers only)')"

# 1a. boot to agent-ready, shared VM
vmrun vm start >/dev/null
vmrun run --rm --isolation shared-vm busybox true >/dev/null   # the layer copied in once
boots=()
for _ in 1 2 3; do
    vmrun vm stop >/dev/null
    boots+=("$(ms vmrun vm start)")
done
echo "shared VM boot to agent-ready (vmrun vm start, data disk mounted), median of 3: $(printf '%s\n' "${boots[@]}" | median) ms (target on hardware KVM <= 80 ms)"

# 1b. run --rm in each mode
native=$(median_of "$RUNS" vmrun run --rm busybox true)
shared=$(median_of "$RUNS" vmrun run --rm --isolation shared-vm busybox true)
own=$(median_of "$RUNS" vmrun run --rm --isolation vm busybox true)
echo "vmrun run --rm busybox true, median of $RUNS:"
echo "  native (this host's kernel):          $native ms"
echo "  shared VM ($backend/$accel, VM running):      $shared ms  ($(awk -v a="$shared" -v b="$native" 'BEGIN {printf "%.1f", a / b}')x native)"
echo "  microVM per container ($backend/$accel):     $own ms  ($(awk -v a="$own" -v b="$native" 'BEGIN {printf "%.1f", a / b}')x native; target on hardware KVM <= 300 ms)"

# 1c. agent RSS
rss=$(vmrun vm status | awk '/^Agent RSS:/ {print $3}')
echo "guest agent RSS when idle: ${rss} KiB (target <= 5120 KiB)"
vmrun vm stop >/dev/null

# 2. our VMM inside the nested KVM host
if [ -d /sys/module/kvm_pvm ]; then
    RUNNER=${CARGO_TARGET_DIR:-$ROOT_DIR/target}/release/examples/kvmhost_run
    [ -x "$RUNNER" ] || cargo build --release -q --manifest-path "$ROOT_DIR/Cargo.toml" \
        -p vmrun-kvmhost --example kvmhost_run
    KERNEL=$("$ROOT_DIR/kernel-config/build.sh" --path)
    INITRD=$("$ROOT_DIR/installer/agent-initramfs.sh")
    files=()
    for b in vmrund vmrun-shim vmrun vmrun-vmm; do files+=(--binary "$BIN_DIR/$b:/b/$b"); done
    files+=(--binary "$(command -v mkfs.ext4):/b/mkfs.ext4" --binary "$(command -v date):/b/gnu-date")
    files+=(--file "$KERNEL:/k/vmlinux" --file "$INITRD:/k/initramfs.cpio" --file "$D/busybox.tar:/k/busybox.tar")
    inner=$(cat <<EOF
export PATH=/b:\$PATH
# Full path: busybox sh runs its own date applet (no %N) even when PATH names another.
ms() { t0=\$(/b/gnu-date +%s%N); "\$@" >/tmp/out 2>&1 || { cat /tmp/out; exit 1; }; t1=\$(/b/gnu-date +%s%N); echo \$(( (t1 - t0) / 1000000 )); }
vmrund --host unix:///tmp/d.sock --data-root /tmp/data --exec-root /tmp/run --shim /b/vmrun-shim \
    --vm-backend vmm --vmm /b/vmrun-vmm --vm-kernel /k/vmlinux --vm-initrd /k/initramfs.cpio \
    --bridge vmb0 --vm-memory 256 --vm-cpus 1 >/tmp/vmrund.log 2>&1 &
for i in \$(seq 100); do [ -S /tmp/d.sock ] && break; sleep 0.1; done
v() { vmrun -H unix:///tmp/d.sock "\$@"; }
v load -i /k/busybox.tar >/dev/null
v run --rm --isolation shared-vm busybox true >/dev/null
for i in 1 2 3; do v vm stop >/dev/null; echo "boot \$(ms v vm start)"; done
for i in \$(seq $RUNS); do echo "shared \$(ms v run --rm --isolation shared-vm busybox true)"; done
for i in \$(seq $RUNS); do echo "own \$(ms v run --rm --isolation vm busybox true)"; done
echo "rss \$(v vm status | awk '/^Agent RSS:/ {print \$3}')"
EOF
)
    if out=$("$RUNNER" --timeout 590 "${files[@]}" -- "$inner" 2>"$D/nested.err"); then
        pick() { awk -v k="$1" '$1 == k {print $2}' <<<"$out" | median; }
        echo "through our VMM inside the nested KVM host (accelerator: nested KVM on TCG; regression figures), medians:"
        echo "  shared VM boot to agent-ready: $(pick boot) ms"
        echo "  run --rm: shared VM $(pick shared) ms, microVM per container $(pick own) ms"
        echo "  guest agent RSS when idle: $(pick rss) KiB"
    else
        echo "nested KVM host run failed:"; sed 's/^/  /' "$D/nested.err" | tail -n 30; echo "$out" | tail -n 20
    fi
fi
