#!/usr/bin/env bash
# Pull benchmark: `vmrun pull` of a multi-layer Debian image from a local
# registry (vmrun CLI -> vmrund: download + verify + unpack into its store)
# against skopeo + umoci (`skopeo copy docker://... oci:...` then
# `umoci unpack`: the same download + verify + unpack), in one run.
#
# Usage: bench/pull.sh [--bin-dir DIR] [--runs N] [--fs loop|dir] [--work-dir DIR]   (as root)
#
#   --bin-dir DIR  where vmrund, vmrun-shim and vmrun are (env VMRUN_BIN_DIR).
#                  Default: ${CARGO_TARGET_DIR:-REPO/target}/release, built
#                  with `cargo build --release` if a binary is missing there.
#   --runs N       measured runs per subject (default 5).
#   --fs loop      (default) the destinations go on a fresh ext4 filesystem
#                  (sparse file in the temp dir, loop-mounted), away from
#                  other processes' file churn on the host filesystem;
#   --fs dir       they go straight into the temp dir.
#   --work-dir DIR where the temp dir (registry, destinations) goes (default /tmp).
#   env DEBIAN_MIRROR  Debian mirror for debootstrap (default: the first
#                  bookworm one in /etc/apt/sources.list*).
#
# What it does:
#  1. once, cached in ~/.cache/vmrun/bench/debian-bookworm-minbase-3l/ (a
#     finished OCI layout; delete it to rebuild): `debootstrap --variant=minbase
#     bookworm` into a scratch dir, then three gzip layers written straight
#     into an OCI layout with sha256sum + jq: the rootfs without /usr/lib and
#     /usr/share (and without /dev's nodes), /usr/lib, /usr/share;
#  2. starts Debian's docker-registry (own config, storage and port under a
#     temp dir $D, plain HTTP on 127.0.0.1) and `skopeo copy`s the image in as
#     127.0.0.1:PORT/bench/debian:bookworm;
#  3. N rounds, the subject order alternating every round, each run starting
#     from an empty destination (`sync` before every run, untimed). Every
#     run's destination is kept until the end, and by default all of them are
#     on a private ext4 (--fs loop): on ext4 without a journal (the dev
#     machine's /) inodes freed in the last 60-360 s are skipped one by one
#     when new ones are allocated, so any large `rm -rf` shortly before a run
#     (the previous run's, a previous bench's cleanup, other builds and tests)
#     made file creation several times slower, for both subjects:
#       vmrun: a fresh vmrund (new data root and exec root, started and
#              stopped outside the timing) per run, then timed:
#              vmrun -H unix://SOCK pull 127.0.0.1:PORT/bench/debian:bookworm
#              (loopback registries are plain HTTP for vmrun, after a failed
#              HTTPS probe, so no --insecure-registry is needed);
#       peer:  skopeo copy --src-tls-verify=false docker://... oci:DIR:bookworm
#              && umoci unpack --image DIR:bookworm BUNDLE, timed together.
#     Every run must exit 0 and give the expected image (vmrun: the image id
#     is the config digest; peer: the bundle's rootfs has /usr/bin/apt-get);
#  4. prints median, min, max per subject, the image size (compressed, tar,
#     and on disk once unpacked), the ratio vmrun/peer of the medians against
#     the target (<= 1.0x), and a rough split of each subject's median run:
#     vmrun from its timestamped progress lines (manifest and config until
#     "Pulling fs layer", downloads until the last "Download complete",
#     then unpacking and commit until exit), the peer as copy vs unpack;
#  5. on any exit stops vmrund and the registry, unmounts everything under $D
#     (and under a half-built cache dir), removes them, and removes the vmrun0
#     bridge if vmrund made it and no other vmrund runs.
set -euo pipefail
export LC_ALL=C

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
RUNS=5
BIN_DIR=${VMRUN_BIN_DIR:-}
WORK_DIR=/tmp
FS=loop
SUITE=bookworm
TAG=bookworm
REPO=bench/debian
CACHE=${HOME:-/root}/.cache/vmrun/bench
LAYOUT=$CACHE/debian-$SUITE-minbase-3l
MIN_UNPACKED=$((50 * 1000 * 1000))

usage() {
    sed -n '7,19p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) [ $# -ge 2 ] || usage; BIN_DIR=$2; shift 2 ;;
        --bin-dir=*) BIN_DIR=${1#--bin-dir=}; shift ;;
        --runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
        --runs=*) RUNS=${1#--runs=}; shift ;;
        --fs) [ $# -ge 2 ] || usage; FS=$2; shift 2 ;;
        --fs=*) FS=${1#--fs=}; shift ;;
        --work-dir) [ $# -ge 2 ] || usage; WORK_DIR=$2; shift 2 ;;
        --work-dir=*) WORK_DIR=${1#--work-dir=}; shift ;;
        -h|--help) usage ;;
        *) echo "pull.sh: unknown argument: $1" >&2; usage ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "pull.sh: --runs must be a positive integer" >&2; exit 2; }
[[ $FS =~ ^(loop|dir)$ ]] || { echo "pull.sh: --fs must be loop or dir" >&2; exit 2; }

die() { echo "pull.sh: $*" >&2; exit 1; }
log() { echo "pull.sh: $*" >&2; }

[ "$EUID" -eq 0 ] || die "needs root (debootstrap, vmrund, umoci unpack)"
declare -A PKG=([debootstrap]=debootstrap [skopeo]=skopeo [umoci]=umoci
    [docker-registry]=docker-registry [jq]=jq [gzip]=gzip [sha256sum]=coreutils
    [tar]=tar [awk]=gawk [setsid]=util-linux [ip]=iproute2 [mkfs.ext4]=e2fsprogs)
missing=()
for tool in "${!PKG[@]}"; do
    command -v "$tool" >/dev/null || missing+=("${PKG[$tool]}")
done
[ ${#missing[@]} -eq 0 ] || die "missing tools; install them with: apt-get install -y ${missing[*]}"

# --- binaries --------------------------------------------------------------
# shellcheck source=bench/lib/binaries.sh
. "$ROOT_DIR/bench/lib/binaries.sh"
ensure_binaries vmrund vmrun-shim vmrun

# --- state and cleanup -----------------------------------------------------
# Short paths: vmrund's exec root holds Unix sockets (at most 107 bytes).
[ -d "$WORK_DIR" ] || die "--work-dir $WORK_DIR is not a directory"
D=$(mktemp -d "$WORK_DIR/vpb.XXXXXX")
BUILD_DIR=
VMRUND_PID=
REGISTRY_PID=
HAD_VMRUN0=no
ip link show vmrun0 >/dev/null 2>&1 && HAD_VMRUN0=yes

# shellcheck source=bench/lib/processes.sh
. "$ROOT_DIR/bench/lib/processes.sh"

# Unmounts everything under DIR, deepest first.
umount_under() {
    local m p
    for _ in 1 2 3; do
        m=$(awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
        [ -z "$m" ] && break
        while read -r p; do
            umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null
        done <<<"$m"
    done
}

# Is a vmrund running that is not one of ours?
other_vmrund() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = vmrund ] || continue
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF "$D/" || return 0
    done
    return 1
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [ -n "$VMRUND_PID" ] && stop_pid "$VMRUND_PID" 6
    [ -n "$REGISTRY_PID" ] && stop_pid "$REGISTRY_PID" 5
    umount_under "$D"
    rm -rf "$D" 2>/dev/null || log "could not remove $D completely"
    if [ -n "$BUILD_DIR" ]; then
        umount_under "$BUILD_DIR"
        rm -rf "$BUILD_DIR" 2>/dev/null || log "could not remove $BUILD_DIR completely"
    fi
    if [ "$HAD_VMRUN0" = no ] && ip link show vmrun0 >/dev/null 2>&1 && ! other_vmrund; then
        ip link del vmrun0 2>/dev/null
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

# --- 1. the image (cached) -------------------------------------------------
# The first bookworm mirror of apt's configuration (deb822 or one-line form).
debian_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v s="$SUITE" '
            function flush() { if (uri != "" && suites ~ ("(^| )" s "( |$)")) { print uri; found = 1; exit } }
            /^[[:space:]]*$/ { flush(); uri = ""; suites = ""; next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { $1 = ""; suites = $0 " " }
            END { if (!found) flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk -v s="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++; if ($2 ~ /^\[/) i++;
            if ($(i + 1) == s) print $i }' "$f"
    done
}

# add_blob FILE MEDIA_TYPE -> prints a descriptor; moves FILE into the layout.
add_blob() {
    local file=$1 media=$2 digest size
    digest=$(sha256sum "$file" | cut -d' ' -f1)
    size=$(stat -c %s "$file")
    mv "$file" "$BUILD_DIR/layout/blobs/sha256/$digest"
    jq -cn --arg m "$media" --arg d "sha256:$digest" --argjson s "$size" \
        '{mediaType: $m, digest: $d, size: $s}'
}

build_image() {
    local mirror rootfs layer i descs=() diff_ids=() desc config manifest
    mirror=${DEBIAN_MIRROR:-$(debian_mirror | head -n1)}
    [ -n "$mirror" ] || die "no $SUITE mirror in /etc/apt/sources.list*; set DEBIAN_MIRROR"
    mkdir -p "$CACHE"
    BUILD_DIR=$(mktemp -d "$CACHE/build.XXXXXX")
    rootfs=$BUILD_DIR/rootfs
    log "building the image once: debootstrap --variant=minbase $SUITE from $mirror (a few minutes)..."
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$BUILD_DIR/debootstrap.log" 2>&1 ||
        { tail -n 20 "$BUILD_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
    umount_under "$rootfs"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*_Packages
    mkdir -p "$BUILD_DIR/layout/blobs/sha256"
    # Layer 1: the rootfs without /usr/lib, /usr/share and /dev's nodes;
    # layers 2 and 3: /usr/lib and /usr/share.
    local -a part
    for i in 0 1 2; do
        case $i in
            0) part=(--exclude=./usr/lib --exclude=./usr/share --exclude='./dev/*' .) ;;
            1) part=(./usr/lib) ;;
            2) part=(./usr/share) ;;
        esac
        layer=$BUILD_DIR/layer$i.tar
        tar --numeric-owner --xattrs --xattrs-include='security.capability' \
            -C "$rootfs" -cf "$layer" "${part[@]}"
        diff_ids+=("sha256:$(sha256sum "$layer" | cut -d' ' -f1)")
        gzip -n -6 "$layer"
        descs+=("$(add_blob "$layer.gz" application/vnd.oci.image.layer.v1.tar+gzip)")
    done
    config=$BUILD_DIR/config.json
    printf '%s\n' "${diff_ids[@]}" | jq -cR . | jq -cs \
        --arg created "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '{
            created: $created, architecture: "amd64", os: "linux",
            config: {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["bash"]},
            rootfs: {type: "layers", diff_ids: .},
            history: [{created: $created, created_by: "debootstrap --variant=minbase (bench/pull.sh)"}]
        }' >"$config"
    desc=$(add_blob "$config" application/vnd.oci.image.config.v1+json)
    manifest=$BUILD_DIR/manifest.json
    printf '%s\n' "${descs[@]}" | jq -cs --argjson c "$desc" \
        '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: $c, layers: .}' \
        >"$manifest"
    desc=$(add_blob "$manifest" application/vnd.oci.image.manifest.v1+json)
    jq -cn --argjson m "$desc" --arg t "$TAG" \
        '{schemaVersion: 2, manifests: [$m + {annotations: {"org.opencontainers.image.ref.name": $t}}]}' \
        >"$BUILD_DIR/layout/index.json"
    echo '{"imageLayoutVersion":"1.0.0"}' >"$BUILD_DIR/layout/oci-layout"
    rm -rf "$LAYOUT"
    mv "$BUILD_DIR/layout" "$LAYOUT"
    rm -rf "$BUILD_DIR"
    BUILD_DIR=
}

if [ ! -f "$LAYOUT/index.json" ]; then
    build_image
    log "note: the image build just deleted its rootfs; on ext4 without a journal the first runs may be slower"
fi
MANIFEST_DIGEST=$(jq -r '.manifests[0].digest' "$LAYOUT/index.json")
MANIFEST=$LAYOUT/blobs/sha256/${MANIFEST_DIGEST#sha256:}
[ -f "$MANIFEST" ] || die "$LAYOUT is incomplete; delete it to rebuild"
CONFIG_DIGEST=$(jq -r '.config.digest' "$MANIFEST")
N_LAYERS=$(jq '.layers | length' "$MANIFEST")
COMPRESSED=$(jq '[.layers[].size] | add' "$MANIFEST")
TAR_BYTES=0
for l in $(jq -r '.layers[].digest' "$MANIFEST"); do
    TAR_BYTES=$((TAR_BYTES + $(gzip -dc "$LAYOUT/blobs/sha256/${l#sha256:}" | wc -c)))
done
[ "$TAR_BYTES" -ge "$MIN_UNPACKED" ] || die "the image is only $TAR_BYTES bytes unpacked (< 50 MB)"

# --- 2. registry -----------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=
for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    if port_free "$p"; then PORT=$p; break; fi
done
[ -n "$PORT" ] || die "no free port found"
REF=127.0.0.1:$PORT/$REPO:$TAG
cat >"$D/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $D/registry
http:
  addr: 127.0.0.1:$PORT
EOF
log "starting docker-registry on 127.0.0.1:$PORT..."
setsid docker-registry serve "$D/registry.yml" </dev/null >"$D/registry.log" 2>&1 &
REGISTRY_PID=$!
for ((i = 0; i < 100; i++)); do
    port_free "$PORT" || break
    alive "$REGISTRY_PID" || { cat "$D/registry.log" >&2; die "docker-registry exited"; }
    sleep 0.1
done
port_free "$PORT" && { cat "$D/registry.log" >&2; die "docker-registry did not listen within 10s"; }
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$LAYOUT:$TAG" "docker://$REF" \
    >"$D/push.out" 2>&1 || { cat "$D/push.out" >&2; die "pushing the image with skopeo failed"; }

# --- 3. runs ---------------------------------------------------------------
# DEST: where vmrund's data roots and the peer's layouts and bundles go.
DEST=$D/dest
mkdir -p "$DEST"
if [ "$FS" = loop ]; then
    truncate -s "$((2 + RUNS))G" "$D/dest.img"
    mkfs.ext4 -q -F "$D/dest.img" >"$D/mkfs.out" 2>&1 || { cat "$D/mkfs.out" >&2; die "mkfs.ext4 failed"; }
    mount -o loop "$D/dest.img" "$DEST" 2>"$D/mkfs.out" || { cat "$D/mkfs.out" >&2; die "mounting the loop filesystem failed"; }
fi
FS_NOTE="destinations on $(findmnt -n -o FSTYPE -T "$DEST") ($([ "$FS" = loop ] && echo "fresh loop-mounted filesystem" || echo "$DEST"))"
VMRUN=("$BIN_DIR/vmrun" -H "unix://$D/vmrun.sock")

start_vmrund() {
    local run=$1 i
    rm -f "$D/vmrun.sock"
    setsid "$BIN_DIR/vmrund" --host "unix://$D/vmrun.sock" --data-root "$DEST/vd$run" \
        --exec-root "$D/vr$run" --shim "$BIN_DIR/vmrun-shim" </dev/null >>"$D/vmrund.log" 2>&1 &
    VMRUND_PID=$!
    for ((i = 0; i < 300; i++)); do
        "${VMRUN[@]}" version >/dev/null 2>&1 && return 0
        alive "$VMRUND_PID" || break
        sleep 0.1
    done
    tail -n 30 "$D/vmrund.log" >&2
    die "vmrund did not start"
}

# Prefixes every line of stdin with $EPOCHREALTIME (microseconds, no dot).
stamp() {
    local line
    while IFS= read -r line; do
        printf '%s %s\n' "${EPOCHREALTIME/./}" "$line"
    done
}

# check_rc RC WHAT OUTPUT_FILE: exits on interruption or failure.
check_rc() {
    if [ "$1" -eq 130 ] || [ "$1" -eq 143 ]; then
        exit "$1"
    elif [ "$1" -ne 0 ]; then
        log "$2 failed (exit $1):"
        sed 's/^/  | /' "$3" >&2
        exit 1
    fi
}

# run_vmrun RUN: appends "total head download rest" (microseconds) to vmrun.us.
run_vmrun() {
    local run=$1 t0 t1 rc=0 id first_layer last_dl
    start_vmrund "$run"
    sync
    t0=${EPOCHREALTIME/./}
    { "${VMRUN[@]}" pull "$REF" </dev/null 2>&1 || echo "$?" >"$D/vmrun.rc"; } | stamp >"$D/pull.out"
    t1=${EPOCHREALTIME/./}
    [ -f "$D/vmrun.rc" ] && { rc=$(cat "$D/vmrun.rc"); rm -f "$D/vmrun.rc"; }
    check_rc "$rc" "vmrun pull $REF (run $run)" "$D/pull.out"
    id=$("${VMRUN[@]}" images --no-trunc --format '{{.ID}}' --filter "reference=$REF" 2>&1) ||
        die "vmrun images failed after the pull: $id"
    [ "$id" = "$CONFIG_DIGEST" ] || die "vmrund pulled image $id, expected $CONFIG_DIGEST"
    [ -n "$(find "$DEST/vd$run" -path '*/diff/usr/bin/apt-get' -type f -print -quit)" ] ||
        die "vmrund's store has no unpacked layer with usr/bin/apt-get"
    [ "$run" -eq 1 ] && du -sb "$DEST/vd$run" | cut -f1 >"$D/vmrun-disk"
    first_layer=$(awk '/: Pulling fs layer$/ { print $1; exit }' "$D/pull.out")
    last_dl=$(awk '/: Download complete$/ { t = $1 } END { print t }' "$D/pull.out")
    stop_pid "$VMRUND_PID" 6
    VMRUND_PID=
    if [ -n "$first_layer" ] && [ -n "$last_dl" ]; then
        echo "$((t1 - t0)) $((first_layer - t0)) $((last_dl - first_layer)) $((t1 - last_dl))" >>"$D/vmrun.us"
    else
        echo "$((t1 - t0)) - - -" >>"$D/vmrun.us"
    fi
}

# run_peer RUN: appends "total copy unpack" (microseconds) to peer.us.
run_peer() {
    local run=$1 p t0 t1 t2 rc=0
    p=$DEST/peer$run
    mkdir -p "$p"
    sync
    t0=${EPOCHREALTIME/./}
    skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$REF" "oci:$p/layout:$TAG" \
        </dev/null >"$D/peer.out" 2>&1 || rc=$?
    t1=${EPOCHREALTIME/./}
    check_rc "$rc" "skopeo copy (run $run)" "$D/peer.out"
    umoci unpack --image "$p/layout:$TAG" "$p/bundle" </dev/null >"$D/peer.out" 2>&1 || rc=$?
    t2=${EPOCHREALTIME/./}
    check_rc "$rc" "umoci unpack (run $run)" "$D/peer.out"
    [ -x "$p/bundle/rootfs/usr/bin/apt-get" ] || die "umoci's bundle has no rootfs/usr/bin/apt-get"
    [ "$run" -eq 1 ] && du -sb "$p" | cut -f1 >"$D/peer-disk"
    echo "$((t2 - t0)) $((t1 - t0)) $((t2 - t1))" >>"$D/peer.us"
}

log "measuring: $RUNS runs each of a $N_LAYERS-layer image ($((COMPRESSED / 1000000)) MB compressed), order alternating..."
: >"$D/vmrun.us"
: >"$D/peer.us"
for ((i = 1; i <= RUNS; i++)); do
    if ((i % 2)); then order=(vmrun peer); else order=(peer vmrun); fi
    for s in "${order[@]}"; do
        "run_$s" "$i"
        log "run $i $s: $(tail -n1 "$D/$s.us" | awk '{ printf "%.2f s", $1 / 1e6 }')"
    done
done

# --- 4. table --------------------------------------------------------------
# stats FILE -> "median min max" of the first column, in seconds.
stats() {
    cut -d' ' -f1 "$1" | sort -n | awk '{ v[NR] = $1 }
        END {
            med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.3f %.3f %.3f\n", med / 1e6, v[1] / 1e6, v[NR] / 1e6
        }'
}
# median_row FILE -> the row of the median run (the lower middle one).
median_row() { sort -n -k1,1 "$1" | sed -n "$(( ($(wc -l <"$1") + 1) / 2 ))p"; }

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
echo
echo "pull of $REF ($N_LAYERS layers, debootstrap minbase $SUITE), $RUNS runs each, empty destination every run"
echo "$FS_NOTE"
echo "image: $(mb "$COMPRESSED") compressed (gzip), $(mb "$TAR_BYTES") as tar;" \
    "on disk after a pull: vmrund data root $(mb "$(cat "$D/vmrun-disk")")," \
    "skopeo layout + umoci bundle $(mb "$(cat "$D/peer-disk")")"
printf '  %-40s %9s %9s %9s\n' "" "median" "min" "max"
declare -A MED
for s in vmrun peer; do
    read -r med min max < <(stats "$D/$s.us")
    MED[$s]=$med
    case $s in
        vmrun) label="vmrun pull (fresh vmrund)" ;;
        peer) label="skopeo copy + umoci unpack" ;;
    esac
    printf '  %-40s %7.3f s %7.3f s %7.3f s\n' "$label" "$med" "$min" "$max"
done
awk -v v="${MED[vmrun]}" -v p="${MED[peer]}" 'BEGIN {
    r = v / p
    printf "  ratio vmrun/peer (medians)               %6.3fx   target <= 1.0x: %s\n", r, (r <= 1.0 ? "met" : "NOT met")
}'
read -r total head dl rest < <(median_row "$D/vmrun.us")
if [ "$head" != - ]; then
    awk -v t="$total" -v h="$head" -v d="$dl" -v r="$rest" 'BEGIN {
        printf "  vmrun median run:  %.3f s = %.3f s manifest + config, %.3f s downloads, %.3f s unpacking + commit\n",
            t / 1e6, h / 1e6, d / 1e6, r / 1e6 }'
fi
read -r total copy unpack < <(median_row "$D/peer.us")
awk -v t="$total" -v c="$copy" -v u="$unpack" 'BEGIN {
    printf "  peer median run:   %.3f s = %.3f s skopeo copy + %.3f s umoci unpack\n", t / 1e6, c / 1e6, u / 1e6 }'
