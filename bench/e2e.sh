#!/usr/bin/env bash
# End-to-end start-up benchmark: `run --rm busybox true` through vmrun
# (vmrun CLI -> vmrund -> vmrun-shim -> runtime) against Debian's dockerd 20.10
# (docker CLI -> dockerd -> containerd -> runc), on the same machine, in one run.
#
# Usage: bench/e2e.sh [--bin-dir DIR] [--runs N] [--warmup N]   (as root)
#
#   --bin-dir DIR  where vmrund, vmrun-shim and vmrun are (env VMRUN_BIN_DIR).
#                  Default: ${CARGO_TARGET_DIR:-REPO/target}/release, built
#                  with `cargo build --release` if a binary is missing there.
#   --runs N       measured runs per subject (default 50).
#   --warmup N     unmeasured runs per subject first (default 3).
#
# What it does:
#  1. builds busybox:latest twice from the same busybox-static with
#     installer/make-busybox-image.sh: an OCI layout for vmrund and a
#     docker-archive for dockerd (Debian's 20.10 loads only those); both have
#     the same config, so the same image id (checked).
#  2. starts a private vmrund (socket, data root, exec root under a temp dir
#     $D) and `vmrun load`s the image;
#  3. starts a private dockerd (own socket, data root, exec root, pidfile; its
#     own containerd). If it does not come up with the default networking it
#     is retried once with `--bridge none --iptables=false`, and the table
#     says so. Then `docker load`s the archive;
#  4. runs three subjects, warm-up first, then N rounds, the order rotating
#     every round so drift and leftovers of the previous run hit all alike:
#       vmrun  -H vmrun.sock  run --rm busybox true
#       docker -H docker.sock run --rm busybox true
#       docker -H vmrun.sock  run --rm busybox true   (docker CLI's own cost)
#     Each run is timed with $EPOCHREALTIME around the client process (exec
#     to exit) and must exit 0, else the bench stops with the run's output;
#  5. prints median, p90 and min per subject, the ratio vmrun/dockerd of the
#     medians against the target (<= 0.2x);
#  6. prints the daemons' VmRSS afterwards: vmrund vs dockerd + containerd;
#  7. on any exit (end, error, Ctrl-C) stops both daemons, containerd and
#     anything else still running from $D (shims), unmounts everything under
#     $D and removes it. Bridges (vmrun0, docker0) and the iptables rules the
#     daemons left behind are removed too, but only if they were not there
#     before the bench and no other vmrund/dockerd is running by then.
set -euo pipefail
export LC_ALL=C

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
RUNS=50
WARMUP=3
BIN_DIR=${VMRUN_BIN_DIR:-}

usage() {
    sed -n '6,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) [ $# -ge 2 ] || usage; BIN_DIR=$2; shift 2 ;;
        --bin-dir=*) BIN_DIR=${1#--bin-dir=}; shift ;;
        --runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
        --runs=*) RUNS=${1#--runs=}; shift ;;
        --warmup) [ $# -ge 2 ] || usage; WARMUP=$2; shift 2 ;;
        --warmup=*) WARMUP=${1#--warmup=}; shift ;;
        -h|--help) usage ;;
        *) echo "e2e.sh: unknown argument: $1" >&2; usage ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "e2e.sh: --runs must be a positive integer" >&2; exit 2; }
[[ $WARMUP =~ ^[0-9]+$ ]] || { echo "e2e.sh: --warmup must be an integer" >&2; exit 2; }

die() { echo "e2e.sh: $*" >&2; exit 1; }
log() { echo "e2e.sh: $*" >&2; }

[ "$EUID" -eq 0 ] || die "needs root (daemons, namespaces, mounts)"
for tool in docker dockerd containerd busybox setsid awk sort ip; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

# --- binaries --------------------------------------------------------------
# shellcheck source=bench/lib/binaries.sh
. "$ROOT_DIR/bench/lib/binaries.sh"
ensure_binaries vmrund vmrun-shim vmrun

# --- state and cleanup -----------------------------------------------------
# Short paths on purpose: vmrun's runtime binds
# <exec-root>/runtime/<64-hex id>/start.sock, and a Unix socket path has at
# most 107 bytes, so the exec root must stay under ~32 characters
# (/tmp/vrb.XXXXXX/vr is 18).
D=$(mktemp -d /tmp/vrb.XXXXXX)
VSOCK=$D/vmrun.sock
DSOCK=$D/docker.sock
VMRUND_PID=
DOCKERD_PID=
CONTAINERD_PID=
DOCKERD_NOTE="default networking"
had_link() { ip link show "$1" >/dev/null 2>&1; }
HAD_VMRUN0=no; had_link vmrun0 && HAD_VMRUN0=yes
HAD_DOCKER0=no; had_link docker0 && HAD_DOCKER0=yes
IPT_BEFORE=$D/iptables.before
{ iptables-save -t filter; iptables-save -t nat; } >"$IPT_BEFORE" 2>/dev/null || true

# shellcheck source=bench/lib/processes.sh
. "$ROOT_DIR/bench/lib/processes.sh"

# Pids of processes (other than this shell) whose command line mentions $D.
pids_using_dir() {
    local p
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = "$$" ] && continue
        [ "$p" = "$BASHPID" ] && continue
        tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF "$D/" && echo "$p"
    done
    return 0
}

# Is a daemon of this name running that is not one of ours?
other_running() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = "$1" ] || continue
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF "$D/" || return 0
    done
    return 1
}

# Remove iptables rules (and chains) that appeared during the bench and
# mention one of the given bridges or docker's chains.
remove_new_rules() {
    local pattern=$1 table line chain
    for table in filter nat; do
        iptables-save -t "$table" 2>/dev/null | grep -E '^-A ' | grep -E "$pattern" | while read -r line; do
            grep -qxF -- "$line" "$IPT_BEFORE" && continue
            eval "iptables -t $table ${line/#-A /-D }" 2>/dev/null || true
        done
        iptables-save -t "$table" 2>/dev/null | grep -E '^:DOCKER' | while read -r chain _; do
            chain=${chain#:}
            grep -q "^:$chain " "$IPT_BEFORE" && continue
            iptables -t "$table" -F "$chain" 2>/dev/null || true
            iptables -t "$table" -X "$chain" 2>/dev/null || true
        done
    done
}

cleanup() {
    local rc=$? p m
    set +e
    trap - EXIT INT TERM
    [ -n "$VMRUND_PID" ] && stop_pid "$VMRUND_PID" 6
    [ -n "$DOCKERD_PID" ] && stop_pid "$DOCKERD_PID" 20
    [ -n "$CONTAINERD_PID" ] && stop_pid "$CONTAINERD_PID" 5
    # Shims and anything else still running out of $D.
    for p in $(pids_using_dir); do
        log "stopping leftover pid $p: $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | cut -c1-120)"
        stop_pid "$p" 3
    done
    # Mounts under $D, deepest first.
    for _ in 1 2 3; do
        m=$(awk -v d="$D/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
        [ -z "$m" ] && break
        while read -r p; do
            umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null
        done <<<"$m"
    done
    if [ "$HAD_VMRUN0" = no ] && had_link vmrun0 && ! other_running vmrund; then
        ip link del vmrun0 2>/dev/null
        remove_new_rules 'vmrun0'
    fi
    if [ "$HAD_DOCKER0" = no ] && had_link docker0 && ! other_running dockerd; then
        ip link del docker0 2>/dev/null
        remove_new_rules 'docker0|DOCKER'
    fi
    rm -rf "$D" 2>/dev/null || log "could not remove $D completely"
    exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

# --- 1. images -------------------------------------------------------------
log "building busybox:latest (OCI layout and docker-archive)..."
IMG_OCI=$(bash "$ROOT_DIR/installer/make-busybox-image.sh" "$D/busybox-oci.tar" --format oci)
IMG_DOCKER=$(bash "$ROOT_DIR/installer/make-busybox-image.sh" "$D/busybox-docker.tar" --format docker)
[ "$IMG_OCI" = "$IMG_DOCKER" ] || die "the two image forms differ: $IMG_OCI vs $IMG_DOCKER"

# wait_for NAME PID SECONDS CMD...: until CMD succeeds; fails early if PID died.
wait_for() {
    local name=$1 pid=$2 secs=$3 i
    shift 3
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        alive "$pid" || { log "$name exited"; return 1; }
        sleep 0.1
    done
    log "$name did not answer within ${secs}s"
    return 1
}

VMRUN=("$BIN_DIR/vmrun" -H "unix://$VSOCK")
DOCKER_D=(docker -H "unix://$DSOCK")
DOCKER_V=(docker -H "unix://$VSOCK")

# --- 2. vmrund -------------------------------------------------------------
log "starting vmrund..."
setsid "$BIN_DIR/vmrund" --host "unix://$VSOCK" --data-root "$D/vmrun-data" \
    --exec-root "$D/vr" --shim "$BIN_DIR/vmrun-shim" </dev/null >"$D/vmrund.log" 2>&1 &
VMRUND_PID=$!
wait_for vmrund "$VMRUND_PID" 30 "${DOCKER_V[@]}" version ||
    { tail -n 30 "$D/vmrund.log" >&2; die "vmrund did not start"; }
"${VMRUN[@]}" load -i "$D/busybox-oci.tar" >"$D/load.out" 2>&1 ||
    { cat "$D/load.out" >&2; die "vmrun load failed"; }

# --- 3. dockerd ------------------------------------------------------------
start_dockerd() {
    rm -f "$D/docker.pid"
    setsid dockerd --host "unix://$DSOCK" --data-root "$D/docker-data" --exec-root "$D/docker-exec" \
        --pidfile "$D/docker.pid" "$@" </dev/null >>"$D/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    if wait_for dockerd "$DOCKERD_PID" 60 "${DOCKER_D[@]}" version; then
        return 0
    fi
    stop_pid "$DOCKERD_PID" 20
    DOCKERD_PID=
    return 1
}
log "starting dockerd..."
if ! start_dockerd; then
    log "dockerd failed with default networking; last log lines:"
    tail -n 15 "$D/dockerd.log" >&2
    log "retrying with --bridge none --iptables=false"
    DOCKERD_NOTE="--bridge none --iptables=false (default networking failed to start)"
    for p in $(pids_using_dir); do stop_pid "$p" 5; done
    start_dockerd --bridge none --iptables=false ||
        { tail -n 30 "$D/dockerd.log" >&2; die "dockerd did not start"; }
fi
CONTAINERD_PID=$(pgrep -P "$DOCKERD_PID" -x containerd | head -n1 || true)
"${DOCKER_D[@]}" load -i "$D/busybox-docker.tar" >"$D/load.out" 2>&1 ||
    { cat "$D/load.out" >&2; die "docker load failed"; }

id_v=$("${DOCKER_V[@]}" image inspect --format '{{.Id}}' busybox:latest 2>&1) || die "vmrund: busybox:latest missing: $id_v"
id_d=$("${DOCKER_D[@]}" image inspect --format '{{.Id}}' busybox:latest 2>&1) || die "dockerd: busybox:latest missing: $id_d"
[ "$id_v" = "$IMG_OCI" ] || log "warning: vmrund's image id $id_v is not the built $IMG_OCI"
[ "$id_d" = "$IMG_DOCKER" ] || log "warning: dockerd's image id $id_d is not the built $IMG_DOCKER"

# --- 4. runs ---------------------------------------------------------------
SUBJECTS=(vmrun docker-dockerd docker-vmrund)
declare -A LABEL=(
    [vmrun]="vmrun  CLI -> vmrund"
    [docker-dockerd]="docker CLI -> dockerd 20.10"
    [docker-vmrund]="docker CLI -> vmrund"
)

# one_run SUBJECT WHAT: runs it, checks the exit code, prints microseconds.
one_run() {
    local subject=$1 what=$2 t0 t1 rc=0 cmd
    case $subject in
        vmrun) cmd=("${VMRUN[@]}") ;;
        docker-dockerd) cmd=("${DOCKER_D[@]}") ;;
        docker-vmrund) cmd=("${DOCKER_V[@]}") ;;
    esac
    t0=$EPOCHREALTIME
    "${cmd[@]}" run --rm busybox true </dev/null >"$D/run.out" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    if [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ]; then
        exit "$rc" # interrupted: the INT/TERM trap reports it
    elif [ "$rc" -ne 0 ]; then
        echo "e2e.sh: $what of ${LABEL[$subject]} failed (exit $rc): ${cmd[*]} run --rm busybox true" >&2
        sed 's/^/  | /' "$D/run.out" >&2
        exit 1
    fi
    echo $(( ${t1/./} - ${t0/./} ))
}

log "warm-up: $WARMUP runs each..."
for ((i = 1; i <= WARMUP; i++)); do
    for s in "${SUBJECTS[@]}"; do one_run "$s" "warm-up run $i" >/dev/null; done
done
log "measuring: $RUNS runs each, order rotating..."
for s in "${SUBJECTS[@]}"; do : >"$D/$s.us"; done
for ((i = 1; i <= RUNS; i++)); do
    for ((k = 0; k < ${#SUBJECTS[@]}; k++)); do
        s=${SUBJECTS[$(((i + k) % ${#SUBJECTS[@]}))]}
        us=$(one_run "$s" "run $i")
        echo "$us" >>"$D/$s.us"
    done
done

# --- 5. table --------------------------------------------------------------
# stats FILE -> "median p90 min" in milliseconds (p90: nearest rank).
stats() {
    sort -n "$1" | awk '{ v[NR] = $1 }
        END {
            med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            r = int(0.9 * NR); if (r < 0.9 * NR) r++
            printf "%.1f %.1f %.1f\n", med / 1000, v[r] / 1000, v[1] / 1000
        }'
}
declare -A MED
echo
echo "end-to-end \`run --rm busybox true\`, $RUNS runs each after $WARMUP warm-up, client exec to exit"
echo "image $IMG_OCI; dockerd: $DOCKERD_NOTE"
printf '  %-30s %9s %9s %9s\n' "" "median" "p90" "min"
for s in "${SUBJECTS[@]}"; do
    read -r med p90 min < <(stats "$D/$s.us")
    MED[$s]=$med
    printf '  %-30s %6.1f ms %6.1f ms %6.1f ms\n' "${LABEL[$s]}" "$med" "$p90" "$min"
done
awk -v v="${MED[vmrun]}" -v d="${MED[docker-dockerd]}" -v c="${MED[docker-vmrund]}" 'BEGIN {
    r = v / d
    printf "  ratio vmrun/dockerd (medians)  %6.3fx   target <= 0.2x: %s\n", r, (r <= 0.2 ? "met" : "NOT met")
    printf "  docker CLI vs vmrun CLI on vmrund: %+.1f ms (median)\n", c - v
}'

# --- 6. RSS ----------------------------------------------------------------
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
v_rss=$(rss_kib "$VMRUND_PID")
d_rss=$(rss_kib "$DOCKERD_PID")
c_rss=0
[ -n "$CONTAINERD_PID" ] && c_rss=$(rss_kib "$CONTAINERD_PID")
echo "daemon RSS after the runs (VmRSS):"
awk -v v="$v_rss" -v d="$d_rss" -v c="$c_rss" 'BEGIN {
    printf "  vmrund                         %7.1f MiB\n", v / 1024
    printf "  dockerd + containerd           %7.1f MiB  (%.1f + %.1f)\n", (d + c) / 1024, d / 1024, c / 1024
    if (d + c > 0) printf "  ratio vmrund/(dockerd+containerd) %5.3fx\n", v / (d + c)
}'
[ -n "$CONTAINERD_PID" ] || echo "  (no containerd child of dockerd found)"
