#!/usr/bin/env bash
# vmrun-runtime as containerd's OCI runtime: `ctr run --rm` of busybox `true`
# through a private containerd 1.6 (Debian's), its runc shim
# (io.containerd.runc.v2) given vmrun-runtime, runc or crun as BinaryName
# (`ctr run --runc-binary`), all three in the same run.
#
# Usage: bench/oci_runtime.sh [RUNS]   (root; default 30 runs each)
#        VMRUN_RUNTIME=/path/to/vmrun-runtime to skip the release build.
#
# What a number is: the wall time of one `ctr run --rm` (create the
# container record and snapshot, start a shim, runtime create + start, wait,
# runtime delete, remove the snapshot), measured with $EPOCHREALTIME around
# the ctr command. Most of it is containerd and the shim, the same for all
# three: the runtime's share is what differs.
#
# Fairness: crun refuses this machine's hybrid cgroup layout, so containerd
# (and with it every shim and runtime) runs in ONE private mount namespace
# (`unshare -m`) with the empty v2 mount /sys/fs/cgroup/unified removed, for
# all three alike. Runs are interleaved and the order rotates every round.
set -euo pipefail

RUNS=${1:-30}
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/numbers.sh
source "$ROOT_DIR/bench/lib/numbers.sh"
# shellcheck source=lib/containerd.sh
source "$ROOT_DIR/bench/lib/containerd.sh"
if [[ $EUID -ne 0 ]]; then
    echo "oci_runtime.sh: needs root" >&2
    exit 1
fi
for tool in containerd ctr containerd-shim-runc-v2 crun runc unshare; do
    command -v "$tool" >/dev/null || {
        echo "oci_runtime.sh: $tool not found (apt-get install containerd runc crun)" >&2
        exit 1
    }
done

if [[ -n ${VMRUN_RUNTIME:-} ]]; then
    VMRUN=$VMRUN_RUNTIME
else
    echo "building vmrun-runtime (release)..." >&2
    cargo build --release -q -p vmrun-runtime --manifest-path "$ROOT_DIR/Cargo.toml"
    VMRUN=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT_DIR/Cargo.toml" |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/vmrun-runtime
fi
[[ -x $VMRUN ]] || { echo "oci_runtime.sh: $VMRUN is not executable" >&2; exit 1; }

WORK=$(mktemp -d /tmp/oci-bench.XXXXXX)
cleanup() {
    cleanup_private_containerd "$WORK" oci-bench
}
trap cleanup EXIT

make_busybox_oci_tar "$WORK"
write_private_containerd_config "$WORK"

cat >"$WORK/measure.sh" <<'INNER'
set -euo pipefail
umount /sys/fs/cgroup/unified 2>/dev/null || true
containerd --config "$WORK/config.toml" >"$WORK/containerd.log" 2>&1 &
CTD=$!
ctr_() { ctr --address "$WORK/c.sock" --namespace oci-bench "$@"; }
for _ in $(seq 1 100); do ctr_ version >/dev/null 2>&1 && break; sleep 0.1; done
ctr_ image import "$WORK/busybox.tar" >/dev/null
IMAGE=docker.io/library/busybox:latest
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'; }
binary() {
    case $1 in
        vmrun) echo "$VMRUN" ;;
        crun) command -v crun ;;
        runc) command -v runc ;;
    esac
}
# One warm-up each (page cache, first shim start).
for rt in vmrun crun runc; do
    ctr_ run --rm --runc-binary "$(binary $rt)" --runc-root "$WORK/rt-$rt" "$IMAGE" "warm-$rt" true
done
ORDERS=("vmrun crun runc" "crun runc vmrun" "runc vmrun crun")
for i in $(seq 1 "$RUNS"); do
    for rt in ${ORDERS[$((i % 3))]}; do
        t0=$EPOCHREALTIME
        ctr_ run --rm --runc-binary "$(binary $rt)" --runc-root "$WORK/rt-$rt" "$IMAGE" "b$i-$rt" true
        t1=$EPOCHREALTIME
        ms "$t0" "$t1" >>"$WORK/$rt.ms"
    done
done
kill "$CTD"
wait "$CTD" 2>/dev/null || true
INNER
echo "running $RUNS x 3 containers through containerd..." >&2
WORK=$WORK VMRUN=$VMRUN RUNS=$RUNS unshare -m bash "$WORK/measure.sh"

V=$(median <"$WORK/vmrun.ms")
C=$(median <"$WORK/crun.ms")
R=$(median <"$WORK/runc.ms")
echo "ctr run --rm busybox true through containerd $(containerd --version | awk '{print $3}'), median of $RUNS runs:"
printf '  vmrun-runtime  %8.2f ms\n' "$V"
printf '  crun           %8.2f ms\n' "$C"
printf '  runc           %8.2f ms\n' "$R"
printf '  vmrun/crun     %8sx   (target <= 1.00)\n' "$(ratio "$V" "$C")"
printf '  vmrun/runc     %8sx\n' "$(ratio "$V" "$R")"
