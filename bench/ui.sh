#!/usr/bin/env bash
# Desktop dashboard start-up and idle memory.
#
# Usage: bench/ui.sh [--runs N] [--no-browser]   (as root)
#
#   --runs N      measured starts per subject (default 10); the table shows the median.
#   --no-browser  skip the browser-adapter subject.
#
# What it does:
#  1. starts a private vmrund (binaries from $VMRUN_BIN_DIR, else target/debug, else
#     target/release) on a temp dir with its own bridge, loads busybox and runs three
#     containers, so the containers view has rows to render;
#  2. desktop app (ui/src-tauri, built by ui/build-desktop.sh unless $VMRUN_DESKTOP_BIN
#     names one): N starts under a private Xvfb; each is timed from exec to the app's
#     test hook (VMRUN_DESKTOP_READY_FILE, written by the webview after the containers
#     view painted with data) — wall time measured here, and the app's own figure;
#  3. after the last start, 5 s idle, then the resident memory (VmRSS) of the app and all
#     its children (WebKitWebProcess, WebKitNetworkProcess), summed;
#  4. browser adapter: `vmrun ui --browser` once, then N fresh chromium pages (new
#     context each, playwright-core) timed from navigation to the rendered view;
#  5. prints medians and the memory, then other dashboards' idle memory as published by
#     third parties (not measured here: neither runs on this host), with their sources;
#     on exit stops everything it started and removes its temp dir.
set -euo pipefail
export LC_ALL=C

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
RUNS=10
BROWSER=1
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --no-browser) BROWSER=""; shift ;;
        *) sed -n '2,8p' "$0" >&2; exit 2 ;;
    esac
done
log() { echo "ui.sh: $*" >&2; }
die() { log "$*"; exit 1; }
[ "$EUID" -eq 0 ] || die "needs root (daemon, containers)"
for tool in Xvfb node; do command -v "$tool" >/dev/null || die "$tool not found (installer/packages.sh)"; done
# shellcheck source=bench/lib/numbers.sh
. "$ROOT_DIR/bench/lib/numbers.sh"
# shellcheck source=bench/lib/processes.sh
. "$ROOT_DIR/bench/lib/processes.sh"

BIN=${VMRUN_BIN_DIR:-}
if [ -z "$BIN" ]; then
    for d in "$ROOT_DIR/target/debug" "$ROOT_DIR/target/release"; do
        [ -x "$d/vmrund" ] && [ -x "$d/vmrun" ] && BIN=$d && break
    done
fi
[ -n "$BIN" ] || die "no vmrund/vmrun built (cargo build -p vmrun-daemon -p vmrun -p vmrun-shim)"

D=$(mktemp -d /tmp/vmb-XXXXXX)
DAEMON_PID="" XVFB_PID="" APP_PID="" UI_PID=""
cleanup() {
    set +e
    for p in "$APP_PID" "$UI_PID"; do [ -n "$p" ] && stop_pid "$p" 5; done
    if [ -n "$DAEMON_PID" ]; then
        "$BIN/vmrun" -H "unix://$D/d.sock" rm -f ui-bench-1 ui-bench-2 ui-bench-3 >/dev/null 2>&1
        stop_pid "$DAEMON_PID" 10
    fi
    [ -n "$XVFB_PID" ] && stop_pid "$XVFB_PID" 5
    for p in $(grep -l "$D" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do kill -KILL "$p" 2>/dev/null; done
    grep " $D" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l
    ip link del "$(basename "$D")" 2>/dev/null
    rm -rf "$D"
}
trap cleanup EXIT INT TERM

# 1. daemon and containers
"$BIN/vmrund" --bridge "$(basename "$D")" --host "unix://$D/d.sock" --data-root "$D/data" \
    --exec-root "$D/run" --shim "$BIN/vmrun-shim" >"$D/vmrund.log" 2>&1 &
DAEMON_PID=$!
VMRUN=("$BIN/vmrun" -H "unix://$D/d.sock")
for _ in $(seq 100); do "${VMRUN[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done
tar=/tmp/vmrun-e2e-busybox.tar
[ -s "$tar" ] || bash "$ROOT_DIR/installer/make-busybox-image.sh" "$tar" >/dev/null
"${VMRUN[@]}" load -i "$tar" >/dev/null
for i in 1 2 3; do "${VMRUN[@]}" run -d --name "ui-bench-$i" busybox sleep 3600 >/dev/null; done

# 2. desktop app under Xvfb
desktop_ms=() hook_ms=() rss_kib=0 pss_kib=0 nprocs=0
APP=${VMRUN_DESKTOP_BIN:-}
if [ -z "$APP" ] && pkg-config --exists webkit2gtk-4.1 2>/dev/null; then
    log "building the desktop app (ui/build-desktop.sh)"
    APP=$(bash "$ROOT_DIR/ui/build-desktop.sh" | tail -1)
fi
tree_mem() { # "RSS PSS" (KiB) summed over PID and its descendants
    local pids=("$1") i=0 kids rss=0 pss=0 p
    while [ $i -lt ${#pids[@]} ]; do
        kids=$(cat /proc/"${pids[$i]}"/task/*/children 2>/dev/null || true)
        for p in $kids; do pids+=("$p"); done
        i=$((i + 1))
    done
    for p in "${pids[@]}"; do
        rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
        pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
    done
    echo "$rss $pss ${#pids[@]}"
}
if [ -n "$APP" ] && [ -x "$APP" ]; then
    n=99; while [ -e "/tmp/.X11-unix/X$n" ]; do n=$((n + 1)); done
    Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
    XVFB_PID=$!
    for _ in $(seq 100); do [ -e "/tmp/.X11-unix/X$n" ] && break; sleep 0.05; done
    for r in $(seq "$RUNS"); do
        rm -f "$D/ready.json"
        t0=$EPOCHREALTIME
        DISPLAY=":$n" WEBKIT_DISABLE_COMPOSITING_MODE=1 NO_AT_BRIDGE=1 VMRUN_HOST="unix://$D/d.sock" \
            VMRUN_DESKTOP_READY_FILE="$D/ready.json" "$APP" >>"$D/desktop.log" 2>&1 &
        APP_PID=$!
        for _ in $(seq 3000); do [ -s "$D/ready.json" ] && break; alive "$APP_PID" || break; sleep 0.01; done
        t1=$EPOCHREALTIME
        [ -s "$D/ready.json" ] || die "the app did not render (run $r); log: $(tail -5 "$D/desktop.log")"
        desktop_ms+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%d", (b - a) * 1000}')")
        hook_ms+=("$(sed 's/.*"ms":\([0-9]*\).*/\1/' "$D/ready.json")")
        if [ "$r" -eq "$RUNS" ]; then sleep 5; read -r rss_kib pss_kib nprocs < <(tree_mem "$APP_PID"); fi
        stop_pid "$APP_PID" 5
        APP_PID=""
    done
else
    log "desktop app not measured: no WebKitGTK stack or no binary (VMRUN_DESKTOP_BIN)"
fi

# 4. browser adapter
browser_ms=""
if [ -n "$BROWSER" ] && [ -x /usr/bin/chromium ]; then
    (cd "$ROOT_DIR/ui" && { [ -d node_modules ] || npm ci --no-audit --no-fund >&2; } && npm run build >/dev/null)
    "${VMRUN[@]}" ui --browser --no-open --assets "$ROOT_DIR/ui/dist" >"$D/ui.url" 2>/dev/null &
    UI_PID=$!
    for _ in $(seq 100); do [ -s "$D/ui.url" ] && break; sleep 0.05; done
    browser_ms=$(cd "$ROOT_DIR/ui" && node e2e/bench.mjs "$(head -1 "$D/ui.url")" "$RUNS")
    ui_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$UI_PID/status" 2>/dev/null || echo 0)
fi

# 5. report
echo
echo "vmrun desktop dashboard, $RUNS starts each, 3 containers listed"
printf '%-52s %s\n' "subject" "median"
if [ ${#desktop_ms[@]} -gt 0 ]; then
    printf '%-52s %s ms\n' "desktop app: exec -> containers view painted (wall)" "$(printf '%s\n' "${desktop_ms[@]}" | median)"
    printf '%-52s %s ms\n' "desktop app: same, the app's own clock" "$(printf '%s\n' "${hook_ms[@]}" | median)"
    printf '%-52s %s MiB RSS, %s MiB PSS (%s processes)\n' "desktop app: idle memory (app + WebKit processes)" \
        "$(awk -v k="$rss_kib" 'BEGIN {printf "%.0f", k / 1024}')" "$(awk -v k="$pss_kib" 'BEGIN {printf "%.0f", k / 1024}')" "$nprocs"
fi
if [ -n "$browser_ms" ]; then
    printf '%-52s %s ms\n' "browser adapter: navigation -> containers view" "$(echo "$browser_ms" | tr ' ' '\n' | median)"
    printf '%-52s %s MiB RSS (the browser not counted)\n' "browser adapter: vmrun ui --browser after the runs" "$(awk -v k="$ui_rss" 'BEGIN {printf "%.1f", k / 1024}')"
fi
echo "all runs (ms): desktop=${desktop_ms[*]:-} browser=${browser_ms}"
# Other dashboards' idle memory: not measured here (neither runs on this host). Neither
# vendor publishes an idle-memory figure for its dashboard; what could be found are
# third-party figures, printed with their sources and not comparable like for like.
echo
echo "reference, third-party figures, NOT measured here (sources in README.md, bench/ui.sh):"
printf '%-52s %s\n' "Docker Desktop (M2 Mac, VM + app, methodology unstated)" "~250 MB  binh.cc/insights/docker-desktop-apple-silicon"
printf '%-52s %s\n' "Docker Desktop backend process alone (Windows, user)" "150-180 MB  github.com/docker/for-win/issues/14367"
printf '%-52s %s\n' "Podman (Lima VM, same teardown as above)" "~200 MB  binh.cc/insights/docker-desktop-apple-silicon"
printf '%-52s %s\n' "Podman Desktop 1.14.2 idle (Windows, a bug report)" "up to 4 GB  github.com/podman-desktop/podman-desktop/issues/10356"
