#!/usr/bin/env bash
# The nested-KVM test host's outer kernel: Debian's linux-image-amd64 (the versioned package it
# depends on), unpacked once into ~/.cache/vmrun/kvmhost/<version>-r<recipe>/ with apt
# (idempotent; a flock keeps concurrent callers from fetching twice). Prints that directory.
#
# Modules, in load order: KVM (irqbypass, ccp, kvm, kvm-amd) and the bridge (llc, stp,
# bridge), which a vmrund started inside needs for its default network.
#
# Offline or unreachable mirror: falls back to the newest version already in the cache.
set -euo pipefail

cache="${XDG_CACHE_HOME:-$HOME/.cache}/vmrun/kvmhost"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

newest_cached() {
    find "$cache" -mindepth 2 -maxdepth 2 -name .complete -printf '%h\n' 2>/dev/null | sort -V | tail -n 1
}

pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}') || true
if [ -z "${pkg:-}" ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}') || true
fi
if [ -z "${pkg:-}" ]; then
    dir=$(newest_cached)
    [ -n "$dir" ] || { echo "outer-kernel.sh: apt knows no linux-image-amd64 and nothing is cached" >&2; exit 1; }
    echo "$dir"; exit 0
fi
version=${pkg#linux-image-}
# Bump when the set of modules changes: an older cache entry then no longer matches.
recipe=2
dir="$cache/$version-r$recipe"
if [ -f "$dir/.complete" ]; then
    echo "$dir"; exit 0
fi

work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt's sandbox user cannot write into root's temp dirs; download as root on purpose.
if ! (cd "$work" && apt-get download -o APT::Sandbox::User=root "$pkg" >/dev/null 2>&1); then
    apt-get update -qq >/dev/null 2>&1 || true
    if ! (cd "$work" && apt-get download -o APT::Sandbox::User=root "$pkg" >/dev/null 2>&1); then
        dir=$(newest_cached)
        [ -n "$dir" ] || { echo "outer-kernel.sh: cannot download $pkg" >&2; exit 1; }
        echo "$dir"; exit 0
    fi
fi
dpkg-deb -x "$work"/*.deb "$work/x"
mkdir -p "$work/out"
cp "$work"/x/boot/vmlinuz-* "$work/out/vmlinuz"
mods="$work/x/lib/modules/$version/kernel"
modules=(virt/lib/irqbypass.ko drivers/crypto/ccp/ccp.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko
    net/llc/llc.ko net/802/stp.ko net/bridge/bridge.ko)
for m in "${modules[@]}"; do
    [ -f "$mods/$m" ] || { echo "outer-kernel.sh: $pkg has no $m" >&2; exit 1; }
    cp "$mods/$m" "$work/out/"
done
# Load order, one module a line.
printf '%s\n' "${modules[@]##*/}" >"$work/out/modules.order"
touch "$work/out/.complete"
rm -rf "$dir"
mv "$work/out" "$dir"
echo "$dir"
