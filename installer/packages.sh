# Debian packages vmrun needs, and a helper that installs only what is missing.
# Sourced by installer/install.sh and tests/run.sh.

# What the product needs at run time.
VMRUN_RUNTIME_PACKAGES=(iptables iproute2 busybox-static ca-certificates)
# What building it needs (plus a Rust toolchain from rustup).
VMRUN_BUILD_PACKAGES=(build-essential pkg-config libseccomp-dev)
# What the tests need on top (util-linux gives `script` for TTY tests).
VMRUN_TEST_PACKAGES=(util-linux curl socat jq docker-registry skopeo apache2-utils)

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
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
