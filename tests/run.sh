#!/usr/bin/env bash
# The test command: installs what the tests need (idempotently), builds every binary, runs
# clippy, the whole test suite as root, and the VMM's fuzz targets for a bounded time. CI
# runs exactly this (.ci/run).
#
# Tests that cannot run here (no root, KVM, QEMU or a tool) skip visibly: each one appends
# its reason to $VMRUN_TEST_SKIP_LOG (crate vmrun-test-skip), and the run ends with the list
# of skipped tests and one line `N passed, N failed, N skipped` counting them apart.
#
# VMRUN_FUZZ_SECONDS: seconds per fuzz target (default 15; 0 skips fuzzing).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if [ "$(id -u)" -eq 0 ]; then
    # shellcheck source=installer/packages.sh
    . installer/packages.sh
    ensure_packages "${VMRUN_RUNTIME_PACKAGES[@]}" "${VMRUN_BUILD_PACKAGES[@]}" "${VMRUN_TEST_PACKAGES[@]}"
    # The desktop GUI's tests: node + npm, chromium, WebKitGTK + Xvfb for the Tauri app.
    ensure_gui_build_packages
    ensure_packages "${VMRUN_GUI_TEST_PACKAGES[@]}" "${VMRUN_TAURI_PACKAGES[@]}"
else
    echo "tests/run.sh: not root: tests that need root will skip" >&2
fi
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

# VM tests: the guest kernel (built once into ~/.cache/vmrun/kernel, a few minutes cold),
# vhost-device-vsock for the QEMU backend (built once into ~/.cache/vmrun/tools), and the
# nested KVM host's outer kernel (Debian's linux-image-amd64, fetched once into
# ~/.cache/vmrun/kvmhost). The tests find them there; without them they skip and say so.
if [ "$(id -u)" -eq 0 ]; then
    # The daemons the tests start boot exactly these two (not merely the newest in the
    # cache, which another checkout may have written).
    VMRUN_VM_KERNEL=$(kernel-config/build.sh)
    # The guest agent initramfs (static vmrun-agent + vmrun-shim).
    VMRUN_VM_INITRD=$(installer/agent-initramfs.sh)
    export VMRUN_VM_KERNEL VMRUN_VM_INITRD
    # shellcheck source=installer/tools.sh
    . installer/tools.sh
    ensure_vhost_device_vsock
    tests/kvmhost/outer-kernel.sh >/dev/null || echo "tests/run.sh: no outer kernel for the nested KVM host" >&2
fi

skip_log=$(mktemp /tmp/vmrun-skips.XXXXXX)
test_log=$(mktemp /tmp/vmrun-tests.XXXXXX)
trap 'rm -f "$skip_log" "$test_log"' EXIT
export VMRUN_TEST_SKIP_LOG="$skip_log"
failed_steps=()

# The end-to-end tests drive the real binaries: build them first.
cargo build --locked --workspace --bins
bins="${CARGO_TARGET_DIR:-$repo/target}/debug"

echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings || failed_steps+=(clippy)

# The desktop GUI's front end: Vitest unit tests (npm ci first when its lock changed). Its
# browser and desktop-window tests are in tests/e2e (ui_browser.rs, ui_desktop.rs).
if command -v npm >/dev/null 2>&1; then
    echo "== ui: npm test"
    (cd ui && { { [ -f node_modules/.package-lock.json ] && [ ! package-lock.json -nt node_modules/.package-lock.json ]; } ||
        npm ci --no-audit --no-fund; } && npm test) || failed_steps+=("ui npm test")
fi

# The vmrun CLI against our daemon and against Debian's dockerd, output compared with the
# docker CLI's (each script prints why it skips when it cannot run). Each counts as a test.
script_passed=0 script_failed=0
for script in compat.sh against-dockerd.sh; do
    if VMRUN_BIN_DIR="$bins" bash "host/cli/tests/$script"; then
        script_passed=$((script_passed + 1))
    else
        script_failed=$((script_failed + 1))
        failed_steps+=("$script")
    fi
done

# The tests, in two phases to fit a 2-core machine's half hour:
# 1. two lanes at once: the VM end-to-end tests (mostly waiting on QEMU TCG) in one; the
#    other end-to-end tests, then the crates' own tests but the nested-KVM ones, in the
#    other. Each lane has its own e2e lock file (tests/e2e/src/daemon.rs): one test daemon
#    at a time per lane, and lanes share nothing fixed.
# 2. the tests through nested KVM (an outer QEMU whose two vCPUs take both cores: the VMM
#    crates, the nested host and the end-to-end tests under our own VMM), alone.
e2e_vm=() e2e_nested=() e2e_main=()
for file in tests/e2e/tests/*.rs; do
    name=$(basename "$file" .rs)
    case $name in
    *_own_vmm) e2e_nested+=(--test "$name") ;;
    # compose.rs (docker-compose against vmrund and dockerd, 2.5 min) balances the lanes.
    vm_* | containerd_* | ports | container_network | compose) e2e_vm+=(--test "$name") ;;
    *) e2e_main+=(--test "$name") ;;
    esac
done
nested_crates=(-p vmrun-vm -p vmrun-vmm -p vmrun-kvmhost)
cargo test --locked --workspace --no-run >/dev/null 2>&1 || cargo test --locked --workspace --no-run
vm_lane_log=$(mktemp /tmp/vmrun-tests-vm.XXXXXX)
trap 'rm -f "$skip_log" "$test_log" "$vm_lane_log"' EXIT
phase_started=$SECONDS
set +e
echo "== cargo test: end-to-end tests, VM lane (in the background: its output follows the main lane's)"
VMRUN_E2E_LOCK=/tmp/vmrun-e2e-vm.lock cargo test --locked -p vmrun-e2e --no-fail-fast "${e2e_vm[@]}" \
    -- --test-threads 2 >"$vm_lane_log" 2>&1 &
vm_lane=$!
echo "== cargo test: end-to-end tests, main lane"
cargo test --locked -p vmrun-e2e --no-fail-fast --lib "${e2e_main[@]}" -- --test-threads 2 2>&1 | tee "$test_log"
main_rc=${PIPESTATUS[0]}
echo "== cargo test: every other crate but the nested-KVM ones, main lane"
cargo test --locked --workspace --exclude vmrun-e2e --exclude vmrun-vm --exclude vmrun-vmm \
    --exclude vmrun-kvmhost --no-fail-fast -- --test-threads 2 2>&1 | tee -a "$test_log"
rest_rc=${PIPESTATUS[0]}
cargo test --locked -p vmrun-e2e --no-fail-fast --doc 2>&1 | tee -a "$test_log"
[ "${PIPESTATUS[0]}" -eq 0 ] || rest_rc=1
wait "$vm_lane"
vm_rc=$?
echo "== cargo test: end-to-end tests, VM lane's output"
cat "$vm_lane_log"
cat "$vm_lane_log" >>"$test_log"
echo "== the two lanes took $((SECONDS - phase_started)) s"
phase_started=$SECONDS
echo "== cargo test: through nested KVM (the VMM crates, the nested host, end-to-end under our own VMM)"
cargo test --locked "${nested_crates[@]}" --no-fail-fast -- --test-threads 2 2>&1 | tee -a "$test_log"
nested_rc=${PIPESTATUS[0]}
cargo test --locked -p vmrun-e2e --no-fail-fast "${e2e_nested[@]}" -- --test-threads 2 2>&1 | tee -a "$test_log"
[ "${PIPESTATUS[0]}" -eq 0 ] || nested_rc=1
echo "== the nested-KVM phase took $((SECONDS - phase_started)) s"
set -e
[ "$main_rc" -eq 0 ] || failed_steps+=("cargo test (end-to-end, main lane)")
[ "$vm_rc" -eq 0 ] || failed_steps+=("cargo test (end-to-end, VM lane)")
[ "$rest_rc" -eq 0 ] || failed_steps+=("cargo test (other crates)")
[ "$nested_rc" -eq 0 ] || failed_steps+=("cargo test (nested KVM)")

fuzz_secs=${VMRUN_FUZZ_SECONDS:-15}
if [ "$fuzz_secs" -gt 0 ]; then
    echo "== fuzzing each vmrun-vmm target for ${fuzz_secs}s"
    host/vmm/fuzz/run.sh "$fuzz_secs" || failed_steps+=(fuzz)
fi

# Summary: libtest's "test result" lines, less the tests that reported a skip.
read -r passed failed < <(awk '/^test result:/ {
        for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) }
    } END { print p + 0, f + 0 }' "$test_log")
skipped=$(sort -u "$skip_log" | grep -c . || true)
script_skipped=$(grep -c '^compat.sh' "$skip_log" || true)
passed=$((passed - (skipped - script_skipped) + script_passed - script_skipped))
failed=$((failed + script_failed))
echo
if [ "$skipped" -gt 0 ]; then
    echo "Skipped tests (binary test: reason):"
    sort -u "$skip_log" | sed 's/\t/: /; s/^/  /'
fi
if [ ${#failed_steps[@]} -gt 0 ]; then
    echo "Failed steps: ${failed_steps[*]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ ${#failed_steps[@]} -eq 0 ]
