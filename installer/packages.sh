# Debian packages vmrun needs, and a helper that installs only what is missing.
# Sourced by installer/install.sh and tests/run.sh.

# What the product needs at run time (e2fsprogs: mkfs.ext4 makes the VM backend's layer and
# data disks; the agent boot test uses it and debugfs too).
VMRUN_RUNTIME_PACKAGES=(iptables iproute2 busybox-static ca-certificates qemu-system-x86 e2fsprogs passt)
# What building it needs (plus a Rust toolchain from rustup).
VMRUN_BUILD_PACKAGES=(build-essential pkg-config libseccomp-dev)
# What the tests need on top (util-linux gives `script` for TTY tests; docker.io gives
# dockerd, the reference engine the compatibility tests compare against; umoci is the
# peer of the pull benchmark; docker-compose builds through POST /build in the build tests;
# containerd and podman drive vmrun-runtime as an OCI runtime in tests/e2e/tests/oci_runtime.rs,
# runc and crun are its peers there and in bench/oci_runtime.sh).
VMRUN_TEST_PACKAGES=(util-linux cpio e2fsprogs curl socat jq docker-registry skopeo apache2-utils docker.io umoci openssl docker-compose containerd containernetworking-plugins podman runc crun python3-docker)

# What the desktop GUI (ui/) needs: node + npm build the web front end; chromium is the
# browser the GUI's end-to-end tests drive (through playwright-core, no browser download);
# the rest builds and runs the Tauri 2 shell (WebKitGTK) and screenshots it under Xvfb
# (dbus-daemon and gdbus: the tray test reads and clicks its menu on a private session bus).
# (Debian's npm is needed only with Debian's nodejs: NodeSource's nodejs bundles npm and
# conflicts with it; see ensure_gui_build_packages.)
VMRUN_GUI_BUILD_PACKAGES=(nodejs)
VMRUN_GUI_TEST_PACKAGES=(chromium fonts-dejavu-core)
VMRUN_TAURI_PACKAGES=(libwebkit2gtk-4.1-dev libxdo-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev xvfb x11-apps imagemagick dbus-daemon libglib2.0-bin)

# What building the guest kernel needs (kernel-config/build.sh).
VMRUN_KERNEL_PACKAGES=(linux-source-6.1 build-essential flex bison bc libelf-dev xz-utils)

ensure_packages() {
    local missing=()
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    printf 'installing Debian packages: %s\n' "${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Packages with services (docker.io, docker-registry) must not start them: the tests
    # start their own instances with their own sockets and data roots.
    local policy=/usr/sbin/policy-rc.d placed=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && placed=1
    fi
    local rc=0
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    [ -n "$placed" ] && rm -f "$policy"
    return "$rc"
}

# node + npm for the GUI's front end: Debian's nodejs (18) with Debian's npm, or an
# installed NodeSource nodejs (which bundles npm) as it is.
ensure_gui_build_packages() {
    ensure_packages "${VMRUN_GUI_BUILD_PACKAGES[@]}" || return
    command -v npm >/dev/null 2>&1 || ensure_packages npm
}
