#!/usr/bin/env bash
# Install vmrun on a Debian/Ubuntu machine, as root: system packages, a release build,
# the binaries in /usr/local/bin, the data root, and the default image busybox:latest
# (built from Debian's busybox-static, so no network is needed).
#
# Idempotent: run it again after pulling new code.
#
#   --with-gui   also build and install the desktop dashboard: the web front end in
#                PREFIX/share/vmrun/ui (for `vmrun ui --browser`) and the Tauri app
#                `vmrun-desktop` (for `vmrun ui`), built through Tauri's bundler, which
#                also makes the app's Debian package: copied to
#                $VMRUN_CACHE/vmrun-desktop_VERSION_ARCH.deb (default /var/cache/vmrun),
#                to install elsewhere with `apt install ./vmrun-desktop_…deb`. (An AppImage
#                needs linuxdeploy from GitHub: VMRUN_BUNDLES=deb,appimage where that is
#                reachable.)
set -euo pipefail

with_gui=""
for arg in "$@"; do
    case "$arg" in
    --with-gui) with_gui=1 ;;
    *) printf 'usage: %s [--with-gui]\n' "$0" >&2; exit 2 ;;
    esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
prefix=${VMRUN_PREFIX:-/usr/local}
cache=${VMRUN_CACHE:-/var/cache/vmrun}

say() { printf 'vmrun-install: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run me as root (containers need namespaces, cgroups and mounts)"

# shellcheck source=installer/packages.sh
. "$here/packages.sh"
ensure_packages "${VMRUN_RUNTIME_PACKAGES[@]}" "${VMRUN_BUILD_PACKAGES[@]}"

if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo (Rust 1.85 or newer) is needed to build vmrun: install it with rustup"

# vhost-device-vsock: the vsock device of the QEMU VM backend (hosts without hardware KVM).
# shellcheck source=installer/tools.sh
. "$here/tools.sh"
ensure_vhost_device_vsock

# The guest side of the VM backend: the static agent + shim packed into the guest initramfs
# (cached by content in ~/.cache/vmrun/initramfs; cargo rebuilds only what changed).
say "building the guest agent initramfs"
agent_initrd=$(bash "$here/agent-initramfs.sh")
say "guest agent initramfs: $agent_initrd"

say "building (release)"
(cd "$repo" && cargo build --release --locked -p vmrun -p vmrun-daemon -p vmrun-shim -p vmrun-runtime -p vmrun-vmm -p vmrun-containerd-shim)

say "installing binaries into $prefix/bin"
for bin in vmrun vmrund vmrun-shim vmrun-runtime vmrun-vmm containerd-shim-vmrun-v2; do
    install -m 0755 "$repo/target/release/$bin" "$prefix/bin/$bin.new"
    mv -f "$prefix/bin/$bin.new" "$prefix/bin/$bin"
done
# containerd's runtime io.containerd.vmrun-native.v2: the same shim, tasks without a VM.
ln -sfn containerd-shim-vmrun-v2 "$prefix/bin/containerd-shim-vmrun-native-v2"

getent group vmrun >/dev/null || groupadd --system vmrun
install -d -m 0711 /var/lib/vmrun
install -d -m 0755 /run/vmrun /var/log/vmrun "$cache"

image="$cache/busybox-oci.tar"
if [ ! -s "$image" ] || [ /bin/busybox -nt "$image" ]; then
    say "building the default image busybox:latest from busybox-static"
    bash "$here/make-busybox-image.sh" "$image.tmp" >/dev/null
    mv -f "$image.tmp" "$image"
fi

# A daemon from an older install keeps running the old code: restart it.
# (Only the daemon running from this prefix: private daemons, e.g. of tests, are left alone.)
for pid in $(pgrep -x vmrund || true); do
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    case "$exe" in
    "$prefix/bin/vmrund" | "$prefix/bin/vmrund (deleted)" | "$prefix/bin/vmrund.new"*)
        say "restarting the running vmrun daemon (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        ;;
    esac
done
if [ -n "$with_gui" ]; then
    ensure_gui_build_packages
    ensure_packages "${VMRUN_TAURI_PACKAGES[@]}"
    say "building the desktop dashboard (front end + Tauri app)"
    built=$(bash "$repo/ui/build-desktop.sh" --bundle)
    desktop=$(printf '%s\n' "$built" | tail -1)
    for package in $(printf '%s\n' "$built" | grep -E '\.(deb|AppImage)$' || true); do
        install -m 0644 "$package" "$cache/$(basename "$package").new"
        mv -f "$cache/$(basename "$package").new" "$cache/$(basename "$package")"
        say "desktop app package: $cache/$(basename "$package")"
    done
    install -d -m 0755 "$prefix/share/vmrun"
    rm -rf "$prefix/share/vmrun/ui.new"
    cp -r "$repo/ui/dist" "$prefix/share/vmrun/ui.new"
    rm -rf "$prefix/share/vmrun/ui"
    mv "$prefix/share/vmrun/ui.new" "$prefix/share/vmrun/ui"
    install -m 0755 "$desktop" "$prefix/bin/vmrun-desktop.new"
    mv -f "$prefix/bin/vmrun-desktop.new" "$prefix/bin/vmrun-desktop"
    say "desktop dashboard: 'vmrun ui' (window) or 'vmrun ui --browser'"
fi

# `load` starts the daemon if it is not running.
"$prefix/bin/vmrun" load -i "$image"
say "done: try 'vmrun run --rm busybox echo hello from vmrun'"
