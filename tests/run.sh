#!/usr/bin/env bash
# The test command: installs what the tests need (idempotently), builds every binary,
# and runs the whole test suite as root. CI runs exactly this (.ci/run).
#
# Tests that need root, KVM, QEMU or a tool print why they skip.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if [ "$(id -u)" -eq 0 ]; then
    # shellcheck source=installer/packages.sh
    . installer/packages.sh
    ensure_packages "${VMRUN_RUNTIME_PACKAGES[@]}" "${VMRUN_BUILD_PACKAGES[@]}" "${VMRUN_TEST_PACKAGES[@]}"
else
    echo "tests/run.sh: not root: tests that need root will skip" >&2
fi
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

# VM tests: the guest kernel (built once into ~/.cache/vmrun/kernel, a few minutes cold) and
# vhost-device-vsock for the QEMU backend (built once into ~/.cache/vmrun/tools). The tests
# find both there; without them they skip and say so.
if [ "$(id -u)" -eq 0 ]; then
    kernel-config/build.sh >/dev/null
    # The guest agent initramfs (static vmrun-agent + vmrun-shim) for the agent boot test.
    installer/agent-initramfs.sh >/dev/null
    # shellcheck source=installer/tools.sh
    . installer/tools.sh
    ensure_vhost_device_vsock
fi

# The end-to-end tests drive the real binaries: build them first.
cargo build --locked --workspace --bins
bins="${CARGO_TARGET_DIR:-$repo/target}/debug"

# The vmrun CLI against our daemon and against Debian's dockerd, output compared with the
# docker CLI's (each script prints why it skips when it cannot run).
VMRUN_BIN_DIR="$bins" bash host/cli/tests/compat.sh
VMRUN_BIN_DIR="$bins" bash host/cli/tests/against-dockerd.sh

cargo test --locked --workspace --no-fail-fast -- --test-threads 2
