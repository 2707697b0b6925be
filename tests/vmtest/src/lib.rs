//! Test support for tests that boot a real guest: the guest kernel built by
//! `kernel-config/build.sh` and a tiny initramfs whose init echoes on vsock.
//!
//! Nothing here builds a kernel: a test that finds none skips with the command to run.

use std::fmt;
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

/// Why a test cannot run here; tests print it (`eprintln!("skipping: {skip}")`) and return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The repository root (this crate lives in `tests/vmtest`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
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

/// Builds the echo init with `gcc -static` and writes `dir/initramfs.cpio` (uncompressed;
/// the kernel takes it as is). Skips when gcc or a static libc is missing.
pub fn echo_initramfs(dir: &Path) -> Result<PathBuf, Skip> {
    let src = dir.join("init.c");
    let bin = dir.join("init");
    std::fs::write(&src, ECHO_INIT_C)
        .map_err(|e| Skip(format!("cannot write {}: {e}", src.display())))?;
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .map_err(|e| Skip(format!("cannot run gcc to build the test init: {e}")))?;
    if !out.status.success() {
        return Err(Skip(format!(
            "gcc -static failed building the test init: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
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
