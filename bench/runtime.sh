#!/usr/bin/env bash
# Start-up benchmark of the container runtime: `run` of /bin/true, create +
# start + wait + delete, for vmrun-runtime, crun and runc on one OCI bundle.
#
# Usage: bench/runtime.sh [RUNS]   (root; default 50 runs each)
#
# Fairness: crun refuses this machine's hybrid cgroup layout unless the empty
# v2 mount at /sys/fs/cgroup/unified is gone, so the whole measurement runs in
# ONE private mount namespace (`unshare -m`) with that mount removed, for all
# three runtimes alike. Timing is taken inside that shell with
# $EPOCHREALTIME around each runtime invocation, so the wrapper's own cost is
# not in any number (nothing to subtract). Runs are interleaved and the order
# rotates every round (the kernel tears network namespaces down
# asynchronously, so whoever runs right after another runtime pays for part
# of its cleanup), so drift and leftovers hit all three equally.
set -euo pipefail

RUNS=${1:-50}
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
if [[ $EUID -ne 0 ]]; then
    echo "runtime.sh: needs root" >&2
    exit 1
fi
for tool in crun runc busybox jq unshare; do
    command -v "$tool" >/dev/null || { echo "runtime.sh: $tool not found" >&2; exit 1; }
done

echo "building vmrun-runtime (release)..." >&2
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-rt} cargo build --release -q -p vmrun-runtime \
    --manifest-path "$ROOT_DIR/Cargo.toml"
VMRUN=${CARGO_TARGET_DIR:-/tmp/target-rt}/release/vmrun-runtime

WORK=$(mktemp -d /tmp/rt-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
BUNDLE=$WORK/bundle
mkdir -p "$BUNDLE/rootfs/bin"
cp "$(command -v busybox)" "$BUNDLE/rootfs/bin/busybox"
for applet in sh true cat ls sleep; do ln -s busybox "$BUNDLE/rootfs/bin/$applet"; done
(cd "$BUNDLE" && runc spec)
# One config for all three: runc's default spec, /bin/true, no terminal.
jq '.process.args = ["/bin/true"] | .process.terminal = false' "$BUNDLE/config.json" >"$WORK/config.json"
mv "$WORK/config.json" "$BUNDLE/config.json"

cat >"$WORK/measure.sh" <<'INNER'
set -euo pipefail
umount /sys/fs/cgroup/unified 2>/dev/null || true
cd "$BUNDLE"
ms() { # start end -> milliseconds
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'
}
ORDERS=("vmrun crun runc" "crun runc vmrun" "runc vmrun crun")
for i in $(seq 1 "$RUNS"); do
    for rt in ${ORDERS[$((i % 3))]}; do
        case $rt in
            vmrun) cmd=("$VMRUN" --root "$WORK/state-vmrun" run --bundle "$BUNDLE" "b$i") ;;
            crun)  cmd=(crun --root "$WORK/state-crun" run --bundle "$BUNDLE" "b$i") ;;
            runc)  cmd=(runc --root "$WORK/state-runc" run --bundle "$BUNDLE" "b$i") ;;
        esac
        t0=$EPOCHREALTIME
        "${cmd[@]}" </dev/null
        t1=$EPOCHREALTIME
        ms "$t0" "$t1" >>"$WORK/$rt.ms"
    done
done
INNER
echo "running $RUNS x 3 containers..." >&2
WORK=$WORK BUNDLE=$BUNDLE VMRUN=$VMRUN RUNS=$RUNS unshare -m bash "$WORK/measure.sh"

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
V=$(median "$WORK/vmrun.ms"); C=$(median "$WORK/crun.ms"); R=$(median "$WORK/runc.ms")
echo "runtime start-up, run of /bin/true (create+start+wait+delete), median of $RUNS runs:"
printf '  vmrun-runtime  %8.2f ms\n' "$V"
printf '  crun           %8.2f ms\n' "$C"
printf '  runc           %8.2f ms\n' "$R"
awk -v v="$V" -v c="$C" -v r="$R" 'BEGIN { printf "  vmrun/crun     %8.2fx\n  vmrun/runc     %8.2fx\n", v / c, v / r }'
