#!/usr/bin/env bash
# The containerd shim v2 `containerd-shim-vmrun-v2` (runtime io.containerd.vmrun.v2):
# pod start in a microVM through a private containerd 1.6 (Debian's), next to the same
# shim asked for no VM (io.containerd.vmrun-native.v2: vmrun's agent on the host) and
# containerd's own runc shim (io.containerd.runc.v2 with Debian's runc) in the same run.
#
# Usage: bench/shim.sh [RUNS]   (root; default 5 runs each)
#        VMRUN_SHIM_BIN=/path/to/containerd-shim-vmrun-v2 to skip the release build
#        (the native runtime needs vmrun-shim next to it).
#        VMRUN_VM_KERNEL / VMRUN_VM_INITRD: the guest (default: kernel-config/build.sh
#        and installer/agent-initramfs.sh of this checkout).
#
# What a number is, per runtime (wall time around the ctr command, $EPOCHREALTIME):
#   start  `ctr run -d busybox sleep 1000`: shim start, VM boot to agent-ready, rootfs
#          mount + share, container create + start; ctr returns once the task runs.
#   run    `ctr run --rm busybox true`: the same, plus wait, delete and VM shutdown.
# The accelerator the VM ran under is printed with the figures (QEMU TCG on hosts whose
# /dev/kvm cannot boot Linux: emulation, regression figures only).
set -euo pipefail

RUNS=${1:-5}
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/numbers.sh
source "$ROOT_DIR/bench/lib/numbers.sh"
# shellcheck source=lib/containerd.sh
source "$ROOT_DIR/bench/lib/containerd.sh"
if [[ $EUID -ne 0 ]]; then
    echo "shim.sh: needs root" >&2
    exit 1
fi
for tool in containerd ctr containerd-shim-runc-v2 runc; do
    command -v "$tool" >/dev/null || {
        echo "shim.sh: $tool not found (apt-get install containerd runc)" >&2
        exit 1
    }
done
if [[ -n ${VMRUN_SHIM_BIN:-} ]]; then
    SHIM=$VMRUN_SHIM_BIN
else
    echo "building containerd-shim-vmrun-v2 (release)..." >&2
    cargo build --release -q -p vmrun-containerd-shim -p vmrun-shim --manifest-path "$ROOT_DIR/Cargo.toml"
    SHIM=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT_DIR/Cargo.toml" |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/containerd-shim-vmrun-v2
fi
[[ -x $SHIM ]] || { echo "shim.sh: $SHIM is not executable" >&2; exit 1; }
: "${VMRUN_VM_KERNEL:=$("$ROOT_DIR/kernel-config/build.sh")}"
: "${VMRUN_VM_INITRD:=$("$ROOT_DIR/installer/agent-initramfs.sh")}"
export VMRUN_VM_KERNEL VMRUN_VM_INITRD

WORK=$(mktemp -d /tmp/shim-bench.XXXXXX)
CTD=
cleanup() {
    [[ -z $CTD ]] || kill "$CTD" 2>/dev/null || true
    cleanup_private_containerd "$WORK" shim-bench
}
trap cleanup EXIT

make_busybox_oci_tar "$WORK"
mkdir -p "$WORK/bin"
ln -s "$SHIM" "$WORK/bin/containerd-shim-vmrun-v2"
ln -s "$SHIM" "$WORK/bin/containerd-shim-vmrun-native-v2"
write_private_containerd_config "$WORK"
PATH="$WORK/bin:$PATH" containerd --config "$WORK/config.toml" >"$WORK/containerd.log" 2>&1 &
CTD=$!
ctr_() { ctr --address "$WORK/c.sock" --namespace shim-bench "$@"; }
for _ in $(seq 1 100); do ctr_ version >/dev/null 2>&1 && break; sleep 0.1; done
ctr_ image import "$WORK/busybox.tar" >/dev/null
IMAGE=docker.io/library/busybox:latest
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'; }
runtime() {
    case $1 in
    vm) echo io.containerd.vmrun.v2 ;;
    native) echo io.containerd.vmrun-native.v2 ;;
    *) echo io.containerd.runc.v2 ;;
    esac
}
RUNTIMES=(vm native runc)

# One warm-up each (page cache, first shim start).
for rt in "${RUNTIMES[@]}"; do
    ctr_ run --rm --runtime "$(runtime $rt)" "$IMAGE" "warm-$rt" true
done
echo "running $RUNS x ${#RUNTIMES[@]} runtimes x (start, run --rm)..." >&2
for i in $(seq 1 "$RUNS"); do
    for rt in "${RUNTIMES[@]}"; do
        t0=$EPOCHREALTIME
        ctr_ run -d --runtime "$(runtime $rt)" "$IMAGE" "s$i-$rt" sleep 1000 >/dev/null
        t1=$EPOCHREALTIME
        ms "$t0" "$t1" >>"$WORK/$rt.start.ms"
        ctr_ task kill -s KILL "s$i-$rt"
        ctr_ task delete "s$i-$rt" >/dev/null 2>&1 || {
            sleep 1
            ctr_ task delete "s$i-$rt" >/dev/null
        }
        ctr_ container rm "s$i-$rt"
        t0=$EPOCHREALTIME
        ctr_ run --rm --runtime "$(runtime $rt)" "$IMAGE" "r$i-$rt" true
        t1=$EPOCHREALTIME
        ms "$t0" "$t1" >>"$WORK/$rt.run.ms"
    done
done
ACCEL=$(grep -o 'VM started[^"]*' "$WORK/containerd.log" | tail -1 || true)
[[ -n $ACCEL ]] || ACCEL="unknown: no VM-started line in the containerd log"
echo "containerd $(containerd --version | awk '{print $3}'), busybox, median of $RUNS runs:"
for what in start run; do
    V=$(median <"$WORK/vm.$what.ms")
    N=$(median <"$WORK/native.$what.ms")
    R=$(median <"$WORK/runc.$what.ms")
    printf '  %-5s microVM (vmrun shim) %9.1f ms   native (vmrun shim) %8.1f ms   runc shim %8.1f ms   ratios %sx, %sx\n' \
        "$what" "$V" "$N" "$R" "$(ratio "$V" "$R")" "$(ratio "$N" "$R")"
done
echo "  VM: $ACCEL"
