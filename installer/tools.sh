# Tools vmrun builds from crates.io into a cache outside the checkout (idempotent).
# Sourced by installer/install.sh and tests/run.sh.

VMRUN_TOOLS_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/vmrun/tools"
VMRUN_VHOST_DEVICE_VSOCK_VERSION=0.3.0

# vhost-device-vsock: the vsock device of the QEMU VM backend (host side: a Unix socket with
# the same `CONNECT <port>` handshake as our VMM's). Installed into $VMRUN_TOOLS_DIR/bin,
# where host/vm looks for it when it is not on PATH. vmrun only uses its Unix-socket side
# (`--uds-path`) and never its AF_VSOCK forwarding (0.3.0 does not build without that feature).
ensure_vhost_device_vsock() {
    local bin="$VMRUN_TOOLS_DIR/bin/vhost-device-vsock"
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qF "$VMRUN_VHOST_DEVICE_VSOCK_VERSION"; then
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
    printf 'building vhost-device-vsock %s into %s\n' "$VMRUN_VHOST_DEVICE_VSOCK_VERSION" "$VMRUN_TOOLS_DIR" >&2
    cargo install --quiet --locked vhost-device-vsock --version "=$VMRUN_VHOST_DEVICE_VSOCK_VERSION" \
        --root "$VMRUN_TOOLS_DIR" >&2
}
