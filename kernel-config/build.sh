#!/usr/bin/env bash
# Builds the vmrun guest kernel (an ELF vmlinux with a PVH entry) from Debian's
# linux-source-6.1: `make tinyconfig`, then vmrun.config on top, everything built in.
#
# Idempotent: the result lives in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/vmrun/kernel/<hash of vmrun.config + source version>/vmlinux
# and a second run only prints that path. Prints the path of vmlinux on stdout (progress on
# stderr). Installs the Debian packages it needs when run as root.
#
#   kernel-config/build.sh            build (or find) the kernel, print its path
#   kernel-config/build.sh --path     print the path it would have, build nothing
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
fragment="$here/vmrun.config"
tarball=/usr/src/linux-source-6.1.tar.xz
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/vmrun/kernel"

say() { printf 'kernel-config: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

source_version() { dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true; }

if [ "${1:-}" != "--path" ] && [ -z "$(source_version)" ]; then
    [ "$(id -u)" -eq 0 ] || die "linux-source-6.1 is not installed and I am not root: apt-get install linux-source-6.1"
    # shellcheck source=installer/packages.sh
    . "$repo/installer/packages.sh"
    ensure_packages "${VMRUN_KERNEL_PACKAGES[@]}"
fi
version=$(source_version)
[ -n "$version" ] || die "linux-source-6.1 is not installed"

# The cache key: the fragment, the source package version, and this script's build recipe.
key=$( { printf 'linux-source-6.1 %s\n' "$version"; cat "$fragment"; sed -n '/^# --- recipe/,$p' "$0"; } \
    | sha256sum | cut -c1-16)
out="$cache_root/$key"
if [ "${1:-}" = "--path" ]; then
    echo "$out/vmlinux"
    exit 0
fi
if [ -s "$out/vmlinux" ]; then
    echo "$out/vmlinux"
    exit 0
fi

# --- recipe (changes below this line change the cache key) ---------------------------------
if [ "$(id -u)" -eq 0 ]; then
    # shellcheck source=installer/packages.sh
    . "$repo/installer/packages.sh"
    ensure_packages "${VMRUN_KERNEL_PACKAGES[@]}"
fi
[ -r "$tarball" ] || die "$tarball is missing (package linux-source-6.1)"

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9
if [ -s "$out/vmlinux" ]; then # built by a concurrent run while we waited
    echo "$out/vmlinux"
    exit 0
fi

work=$(mktemp -d "$cache_root/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
say "unpacking linux-source-6.1 $version"
tar -C "$work" -xf "$tarball"
src="$work/linux-source-6.1"

say "configuring: tinyconfig + $(basename "$fragment")"
make -C "$src" -s tinyconfig >/dev/null
(cd "$src" && scripts/kconfig/merge_config.sh -m .config "$fragment" >/dev/null)
make -C "$src" -s olddefconfig 2>/dev/null

# Every line of the fragment must have survived olddefconfig (an unmet dependency drops a
# symbol silently otherwise).
missing=()
while IFS= read -r line; do
    case "$line" in
    "# CONFIG_"*" is not set")
        sym=${line#\# }
        sym=${sym%% *}
        grep -q "^$sym=" "$src/.config" && missing+=("$line")
        ;;
    CONFIG_*=*)
        grep -qxF "$line" "$src/.config" || missing+=("$line")
        ;;
    esac
done <"$fragment"
if [ ${#missing[@]} -gt 0 ]; then
    die "these vmrun.config lines did not survive olddefconfig (unmet dependencies?): ${missing[*]}"
fi

jobs=$(nproc)
say "building vmlinux with make -j$jobs (a few minutes)"
if ! make -C "$src" -s -j"$jobs" vmlinux >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    die "make vmlinux failed"
fi

mkdir -p "$out.tmp"
cp "$src/vmlinux" "$out.tmp/vmlinux"
cp "$src/.config" "$out.tmp/config"
printf 'linux-source-6.1 %s\n' "$version" >"$out.tmp/source-version"
rm -rf "$out"
mv "$out.tmp" "$out"
say "built in $(($(date +%s) - started)) s: $out/vmlinux"
echo "$out/vmlinux"
