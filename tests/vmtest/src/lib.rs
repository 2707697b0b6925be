//! Test support for tests that boot a real guest: the guest kernel built by
//! `kernel-config/build.sh`, a tiny initramfs whose init echoes on vsock (boot-to-ready
//! checks and benchmarks), and the command init (`command_init.c`: many commands over many
//! vsock connections at once, for device and protocol tests), with its host-side helpers.
//!
//! Nothing here builds a kernel: a test that finds none skips with the command to run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The vsock port the echo init listens on.
pub const ECHO_PORT: u32 = 1024;
/// After echoing, the init connects to the host (CID 2) on this port ...
pub const GUEST_CONNECT_PORT: u32 = 1025;
/// ... writes this line, and waits for the host to close the connection before it reboots.
pub const GUEST_HELLO: &[u8] = b"hello from the guest\n";
/// The serial line the init prints once it listens.
pub const LISTENING_LINE: &str = "init: listening on vsock port 1024";

pub use vmrun_test_skip::Skip;

/// The repository root (this crate lives in `tests/vmtest`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The static `vmrun-agent` + `vmrun-shim` as `installer/agent-initramfs.sh` builds them:
/// `$VMRUN_AGENT_BIN_DIR`, else `<target>/x86_64-unknown-linux-gnu/release` next to the
/// calling test binary (`<target>/debug/deps/…`).
pub fn agent_binaries() -> Result<(PathBuf, PathBuf), Skip> {
    let dir = match std::env::var_os("VMRUN_AGENT_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().map_err(|e| Skip(e.to_string()))?;
            let target = exe
                .ancestors()
                .nth(3)
                .ok_or_else(|| Skip("cannot find the target directory".into()))?;
            target.join("x86_64-unknown-linux-gnu").join("release")
        }
    };
    let (agent, shim) = (dir.join("vmrun-agent"), dir.join("vmrun-shim"));
    if agent.is_file() && shim.is_file() {
        Ok((agent, shim))
    } else {
        Err(Skip(format!(
            "no static vmrun-agent + vmrun-shim in {}: run installer/agent-initramfs.sh",
            dir.display()
        )))
    }
}

/// The agent initramfs of [`agent_binaries`] (built by our own code, cached by content).
pub fn agent_initramfs() -> Result<PathBuf, Skip> {
    let (agent, shim) = agent_binaries()?;
    vmrun_agent_client::initramfs::build(&agent, &shim, None)
        .map_err(|e| Skip(format!("building the agent initramfs: {e}")))
}

/// The guest kernel: `$VMRUN_TEST_KERNEL` if set, else the one `kernel-config/build.sh` left
/// in its cache for the current `vmrun.config`. Never builds one.
pub fn guest_kernel() -> Result<PathBuf, Skip> {
    if let Some(path) = std::env::var_os("VMRUN_TEST_KERNEL") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Skip(format!(
                "VMRUN_TEST_KERNEL={} is not a file",
                path.display()
            )))
        };
    }
    let script = repo_root().join("kernel-config/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--path")
        .output()
        .map_err(|e| Skip(format!("cannot run {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(Skip(format!(
            "no guest kernel: {} --path failed ({}); run kernel-config/build.sh",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if path.is_file() {
        Ok(path)
    } else {
        Err(Skip(format!(
            "no guest kernel at {}: run kernel-config/build.sh (a few minutes, cached) or set \
             VMRUN_TEST_KERNEL",
            path.display()
        )))
    }
}

/// The echo init: listens on vsock port 1024, echoes one read back, closes; then connects to
/// the host (CID 2) on port 1025, writes [`GUEST_HELLO`] and waits (at most 5 s) for the host
/// to close; then reboots, which ends the VM.
const ECHO_INIT_C: &str = r#"
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/vm_sockets.h>
#include <sys/reboot.h>
#include <unistd.h>
#include <stdio.h>
int main(void) {
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_port = 1024, .svm_cid = VMADDR_CID_ANY };
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1)) { perror("vsock"); reboot(RB_AUTOBOOT); }
    printf("init: listening on vsock port 1024\n"); fflush(stdout);
    int c = accept(s, 0, 0);
    char buf[256];
    int n = read(c, buf, sizeof buf);
    if (n > 0) write(c, buf, n);
    close(c);
    int h = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm ha = { .svm_family = AF_VSOCK, .svm_port = 1025, .svm_cid = VMADDR_CID_HOST };
    struct timeval tv = { .tv_sec = 5 };
    if (h >= 0 && connect(h, (struct sockaddr *)&ha, sizeof ha) == 0) {
        setsockopt(h, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        write(h, "hello from the guest\n", 21);
        while (read(h, buf, sizeof buf) > 0) {}
        printf("init: said hello to the host\n");
    } else {
        perror("init: connect to the host");
    }
    fflush(stdout);
    close(h);
    reboot(RB_AUTOBOOT);
    return 0;
}
"#;

/// Compiles the C init `source` with `gcc -static -O2` into `dir/<name>`.
fn static_init(dir: &Path, name: &str, source: &str) -> Result<PathBuf, Skip> {
    let src = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    std::fs::write(&src, source)
        .map_err(|e| Skip(format!("cannot write {}: {e}", src.display())))?;
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .map_err(|e| Skip(format!("cannot run gcc to build the test init {name}: {e}")))?;
    if !out.status.success() {
        return Err(Skip(format!(
            "gcc -static failed building the test init {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(bin)
}

/// Builds the echo init with `gcc -static` and writes `dir/initramfs.cpio` (uncompressed;
/// the kernel takes it as is). Skips when gcc or a static libc is missing.
pub fn echo_initramfs(dir: &Path) -> Result<PathBuf, Skip> {
    let bin = static_init(dir, "init", ECHO_INIT_C)?;
    let path = dir.join("initramfs.cpio");
    let write = || -> Result<(), vmrun_initramfs::CpioError> {
        let mut cpio = vmrun_initramfs::CpioWriter::create(&path)?;
        cpio.dir("dev", 0o755)?;
        cpio.char_device("dev/console", 0o600, 5, 1)?;
        cpio.file_from("init", 0o755, &bin)?;
        cpio.finish()?;
        Ok(())
    };
    write().map_err(|e| Skip(format!("cannot write the test initramfs: {e}")))?;
    Ok(path)
}

/// The command init's source (see its header comment for the commands).
const COMMAND_INIT_C: &str = include_str!("command_init.c");

/// busybox-static (Debian package `busybox-static`), the command init's `/bin/busybox`.
const BUSYBOX: &str = "/bin/busybox";

/// Builds the command init with `gcc -static` and writes `dir/command-initramfs.cpio` with it
/// as `/init` and busybox-static as `/bin/busybox`. Skips when gcc, a static libc or
/// busybox-static is missing.
pub fn command_initramfs(dir: &Path) -> Result<PathBuf, Skip> {
    let bin = static_init(dir, "command_init", COMMAND_INIT_C)?;
    if !Path::new(BUSYBOX).is_file() {
        return Err(Skip(format!(
            "{BUSYBOX} is missing (Debian package busybox-static)"
        )));
    }
    let path = dir.join("command-initramfs.cpio");
    let write = || -> Result<(), vmrun_initramfs::CpioError> {
        let mut cpio = vmrun_initramfs::CpioWriter::create(&path)?;
        cpio.dir("dev", 0o755)?;
        cpio.char_device("dev/console", 0o600, 5, 1)?;
        cpio.file_from("init", 0o755, &bin)?;
        cpio.file_from("bin/busybox", 0o755, Path::new(BUSYBOX))?;
        cpio.symlink("bin/sh", "busybox")?;
        cpio.finish()?;
        Ok(())
    };
    write().map_err(|e| Skip(format!("cannot write the command initramfs: {e}")))?;
    Ok(path)
}

/// Sends one command line to the command init on a fresh connection and reads the answer
/// until the guest closes.
pub fn guest_command<S: std::io::Read + std::io::Write>(
    mut stream: S,
    command: &str,
) -> std::io::Result<String> {
    stream.write_all(format!("{command}\n").as_bytes())?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The byte at offset `i` of the command init's `source` pattern.
pub fn pattern_byte(i: u64) -> u8 {
    ((i.wrapping_mul(31)).wrapping_add(i >> 13) & 0xff) as u8
}

/// FNV-1a 64, the command init's `sink` checksum.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(pub u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        for b in data {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Kernel log lines that fail a boot test: a `WARNING`, `BUG` or `Oops`.
///
/// `nested_tcg`: the guest ran under KVM inside QEMU TCG (the nested KVM test host). There
/// one warning is the environment's and is let through: `XSAVE consistency problem` at
/// `fpu/xstate.c:606`. TCG's SVM does not intercept `XSETBV` (QEMU's `helper_xsetbv` has no
/// `SVM_EXIT_XSETBV` check), so the KVM one level down never sees the guest enable AVX and
/// never updates CPUID leaf 0xD's size; QEMU itself with `-accel kvm -cpu host` in the same
/// nested host prints the same warning.
pub fn kernel_complaints(serial: &str, nested_tcg: bool) -> Vec<&str> {
    let xsave_mismatch = serial.contains("XSAVE consistency problem");
    serial
        .lines()
        .filter(|l| {
            l.contains("WARNING:") || l.contains("BUG:") || l.contains("Oops") || l.contains("BUG ")
        })
        .filter(|l| !(nested_tcg && xsave_mismatch && l.contains("fpu/xstate.c:606")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        let mut h = Fnv1a::default();
        h.update(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn complaints_are_found_in_a_serial_log() {
        let log = "[0.1] ok\n[0.2] WARNING: CPU: 0 PID: 0 at x.c:1\n[0.3] fine\n";
        assert_eq!(kernel_complaints(log, false).len(), 1);
        let xsave = "[0.1] XSAVE consistency problem: size 832 != kernel_size 576\n\
                     [0.2] WARNING: CPU: 0 PID: 0 at arch/x86/kernel/fpu/xstate.c:606 0xffff\n";
        assert_eq!(kernel_complaints(xsave, false).len(), 1);
        assert!(kernel_complaints(xsave, true).is_empty());
    }
}
