# A private containerd for the bench scripts (sourced): its config, the busybox image, and
# the clean-up of everything it and its shims leave behind. The sourcing script defines
# ROOT_DIR.

# Writes WORK/config.toml: containerd with its root, state and sockets under WORK, CRI off.
write_private_containerd_config() {
    local work=$1
    cat >"$work/config.toml" <<CONF
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/c.sock"
[ttrpc]
  address = "$work/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
CONF
}

# Builds the busybox OCI image tar at WORK/busybox.tar.
make_busybox_oci_tar() {
    echo "building the busybox image..." >&2
    bash "$ROOT_DIR/installer/make-busybox-image.sh" "$1/busybox.tar" --format oci >/dev/null
}

# Best effort: kills every process naming WORK on its command line (shims outlive
# containerd: they name its socket), unmounts what is mounted under WORK, removes the
# cgroups named NAMESPACE (containerd's namespace is their parent) and WORK itself.
cleanup_private_containerd() {
    local work=$1 namespace=$2 pid h
    set +e +o pipefail # nothing here may stop the removal
    for pid in $(grep -l -s -F "$work" /proc/[0-9]*/cmdline | cut -d/ -f3); do
        kill -9 "$pid" 2>/dev/null || true
    done
    grep -F " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    for h in /sys/fs/cgroup/*/; do
        [[ -d $h/$namespace ]] || continue
        find "$h/$namespace" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    rm -rf "$work"
}
