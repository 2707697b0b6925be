# A private vmrund for the bench scripts (sourced). The sourcing script sets BIN_DIR (the
# binaries), D (its scratch directory), SOCK (the daemon's socket), BRIDGE (a bridge name
# of its own) and PID (empty), and defines die and log; it sources processes.sh first.

# start_daemon [VMRUND ARGS...]: (re)starts vmrund on SOCK with ARGS; PID is its pid.
start_daemon() {
    [ -n "$PID" ] && stop_pid "$PID" 20
    "$BIN_DIR/vmrund" --host "unix://$SOCK" --data-root "$D/data" --exec-root "$D/run" \
        --shim "$BIN_DIR/vmrun-shim" --bridge "$BRIDGE" "$@" >>"$D/vmrund.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        [ -S "$SOCK" ] && "$BIN_DIR/vmrun" -H "unix://$SOCK" version >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "vmrund did not start: $(tail -n 5 "$D/vmrund.log")"
}

# stop_daemon: stops it and removes what it left on the host (its bridge, netns mount).
stop_daemon() {
    [ -n "$PID" ] && stop_pid "$PID" 20
    PID=
    ip link del "$BRIDGE" 2>/dev/null || true
    umount "$D/run/netns" 2>/dev/null || true
}
