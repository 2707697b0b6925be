#!/usr/bin/env bash
# Build benchmark: the same multi-stage Dockerfile (RUN steps on busybox, a COPY of
# a few thousand files, COPY --from) built by three subjects in one run: `vmrun build`
# against vmrund, and `docker build` (classic builder, DOCKER_BUILDKIT=0) against
# vmrund and against Debian's dockerd 20.10.
#
# Usage: bench/build.sh [--bin-dir DIR] [--runs N] [--files N]   (as root)
#
#   --bin-dir DIR  where vmrund, vmrun-shim and vmrun are (env VMRUN_BIN_DIR).
#                  Default: ${CARGO_TARGET_DIR:-REPO/target}/release, built
#                  with `cargo build --release` if a binary is missing there.
#   --runs N       measured builds per daemon and kind (default 3).
#   --files N      files in the copied source tree (default 3000).
#
# Each round builds cold (--no-cache) and then cached (the same context again:
# every step a cache hit, no RUN runs) with each subject; the order rotates between
# rounds. Prints median and min per subject and kind, and the ratios of the medians
# to docker CLI -> dockerd against the targets (cold <= 0.5x, cached <= 0.2x): vmrun
# CLI -> vmrund is the product's own path (as in bench/e2e.sh); docker CLI -> vmrund
# shows the daemon alone (the docker CLI's packing of the context is in both). Both daemons run RUN steps with --network none (dockerd is
# started with --bridge none --iptables=false). Everything it started is stopped
# and its temporary directory removed on exit.
set -euo pipefail
export LC_ALL=C

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
RUNS=3
FILES=3000
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
        --files) [ $# -ge 2 ] || usage; FILES=$2; shift 2 ;;
        --files=*) FILES=${1#--files=}; shift ;;
        -h|--help) usage ;;
        *) echo "build.sh: unknown argument: $1" >&2; usage ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "build.sh: --runs must be a positive integer" >&2; exit 2; }
[[ $FILES =~ ^[1-9][0-9]*$ ]] || { echo "build.sh: --files must be a positive integer" >&2; exit 2; }

die() { echo "build.sh: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

[ "$EUID" -eq 0 ] || die "needs root (daemons, namespaces, mounts)"
for tool in docker dockerd awk sort setsid; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

# shellcheck source=bench/lib/binaries.sh
. "$ROOT_DIR/bench/lib/binaries.sh"
ensure_binaries vmrund vmrun-shim vmrun

# Short paths: the runtime's socket paths under the exec root must fit 107 bytes.
D=$(mktemp -d /tmp/vbb.XXXXXX)
VSOCK=$D/vmrun.sock
DSOCK=$D/docker.sock
VMRUND_PID=
DOCKERD_PID=

# shellcheck source=bench/lib/processes.sh
. "$ROOT_DIR/bench/lib/processes.sh"

cleanup() {
    local rc=$? m p
    set +e
    trap - EXIT INT TERM
    [ -n "$VMRUND_PID" ] && stop_pid "$VMRUND_PID" 10
    [ -n "$DOCKERD_PID" ] && stop_pid "$DOCKERD_PID" 20
    for _ in 1 2 3; do
        m=$(awk -v d="$D/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
        [ -z "$m" ] && break
        while read -r p; do umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null; done <<<"$m"
    done
    rm -rf "$D" 2>/dev/null || log "could not remove $D completely"
    exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

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

log "building busybox:latest (OCI layout and docker-archive)..."
bash "$ROOT_DIR/installer/make-busybox-image.sh" "$D/busybox-oci.tar" --format oci >/dev/null
bash "$ROOT_DIR/installer/make-busybox-image.sh" "$D/busybox-docker.tar" --format docker >/dev/null

log "making the context ($FILES files)..."
CTX=$D/context
mkdir -p "$CTX/src"
for ((i = 0; i < FILES; i++)); do
    dir=$CTX/src/d$((i % 50))
    [ -d "$dir" ] || mkdir -p "$dir"
    echo "file $i of the benchmark context" >"$dir/f$i.txt"
done
cat >"$CTX/Dockerfile" <<'DOCKERFILE'
FROM busybox AS build
COPY src/ /src/
RUN find /src -type f | wc -l > /count && tar -cf /bundle.tar -C /src .
RUN mkdir /out && cp /count /out/ && gzip -c /bundle.tar > /out/bundle.tar.gz
FROM busybox
COPY --from=build /out/ /app/
RUN ls -l /app > /app/listing
CMD ["cat", "/app/count"]
DOCKERFILE

log "starting vmrund..."
setsid "$BIN_DIR/vmrund" --host "unix://$VSOCK" --data-root "$D/vmrun-data" \
    --exec-root "$D/vr" --shim "$BIN_DIR/vmrun-shim" </dev/null >"$D/vmrund.log" 2>&1 &
VMRUND_PID=$!
wait_for vmrund "$VMRUND_PID" 30 docker -H "unix://$VSOCK" version ||
    { tail -n 30 "$D/vmrund.log" >&2; die "vmrund did not start"; }
"$BIN_DIR/vmrun" -H "unix://$VSOCK" load -i "$D/busybox-oci.tar" >/dev/null

log "starting dockerd..."
setsid dockerd --host "unix://$DSOCK" --data-root "$D/docker-data" --exec-root "$D/docker-exec" \
    --pidfile "$D/docker.pid" --bridge none --iptables=false </dev/null >"$D/dockerd.log" 2>&1 &
DOCKERD_PID=$!
wait_for dockerd "$DOCKERD_PID" 60 docker -H "unix://$DSOCK" version ||
    { tail -n 30 "$D/dockerd.log" >&2; die "dockerd did not start"; }
docker -H "unix://$DSOCK" load -i "$D/busybox-docker.tar" >/dev/null

# one_build SUBJECT KIND: prints milliseconds; checks the result runs.
one_build() {
    local subject=$1 kind=$2 t0 t1 extra=() sock=$VSOCK client=(docker)
    [ "$kind" = cold ] && extra=(--no-cache)
    [ "$subject" = docker-dockerd ] && sock=$DSOCK
    [ "$subject" = vmrun ] && client=("$BIN_DIR/vmrun")
    t0=$EPOCHREALTIME
    DOCKER_BUILDKIT=0 "${client[@]}" -H "unix://$sock" build -q --network none "${extra[@]}" \
        -t bench/build "$CTX" >"$D/build.out" 2>&1 || { cat "$D/build.out" >&2; die "$subject build failed"; }
    t1=$EPOCHREALTIME
    local count
    count=$(docker -H "unix://$sock" run --rm --network none bench/build 2>&1)
    [ "$count" = "$FILES" ] || die "the image built on $sock counts $count files, not $FILES"
    echo $(( (${t1/./} - ${t0/./}) / 1000 ))
}

SUBJECTS=(vmrun docker-vmrund docker-dockerd)
declare -A LABEL=(
    [vmrun]="vmrun  CLI -> vmrund"
    [docker-vmrund]="docker CLI -> vmrund"
    [docker-dockerd]="docker CLI -> dockerd 20.10"
)
for s in "${SUBJECTS[@]}"; do for k in cold cached; do : >"$D/$s.$k"; done; done
log "warm-up build on each daemon..."
one_build vmrun cold >/dev/null
one_build docker-dockerd cold >/dev/null
for ((i = 1; i <= RUNS; i++)); do
    log "round $i/$RUNS..."
    for ((k = 0; k < ${#SUBJECTS[@]}; k++)); do
        s=${SUBJECTS[$(((i + k) % ${#SUBJECTS[@]}))]}
        one_build "$s" cold >>"$D/$s.cold"
        one_build "$s" cached >>"$D/$s.cached"
    done
done

stats() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%d %d\n", med, v[1] }'
}
printf '\n%-8s %-34s %10s %10s\n' kind subject "median ms" "min ms"
for k in cold cached; do
    declare -A MED=()
    for s in "${SUBJECTS[@]}"; do
        read -r med min < <(stats "$D/$s.$k")
        MED[$s]=$med
        printf '%-8s %-34s %10d %10d\n' "$k" "${LABEL[$s]}" "$med" "$min"
    done
    target=0.5
    [ "$k" = cached ] && target=0.2
    for s in vmrun docker-vmrund; do
        awk -v v="${MED[$s]}" -v d="${MED[docker-dockerd]}" -v t="$target" -v k="$k" -v l="${LABEL[$s]}" 'BEGIN {
            r = (d > 0) ? v / d : 0
            printf "%-8s %s vs dockerd: %.2fx (target <= %.1fx): %s\n", k, l, r, t, (r <= t) ? "met" : "NOT met" }'
    done
done
echo "binaries: $BIN_DIR; files: $FILES; runs: $RUNS"
