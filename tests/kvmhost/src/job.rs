//! What runs inside the outer host ([`Job`]), what comes back ([`Outcome`]), and the outer
//! initramfs that carries it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vmrun_initramfs::CpioWriter;

/// A command to run inside the outer KVM host, and what it needs there.
#[derive(Debug, Clone)]
pub struct Job {
    pub(crate) files: Vec<(PathBuf, String)>,
    pub(crate) binaries: Vec<(PathBuf, String)>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) command: String,
    pub(crate) timeout: Duration,
    pub(crate) memory_mib: u32,
}

impl Job {
    /// Files the command leaves here come back in [`Outcome::files`] (flat: no subfolders).
    pub const RESULTS_DIR: &'static str = "/kvmhost/results";

    /// A job running `command` with `sh` (busybox) inside the outer host; 120 s, 2 GiB.
    pub fn new(command: impl Into<String>) -> Self {
        Job {
            files: Vec::new(),
            binaries: Vec::new(),
            env: Vec::new(),
            command: command.into(),
            timeout: Duration::from_secs(120),
            memory_mib: 2048,
        }
    }

    /// Copies the file `host_path` to the absolute path `guest_path` inside.
    pub fn file(mut self, host_path: impl Into<PathBuf>, guest_path: impl Into<String>) -> Self {
        self.files.push((host_path.into(), guest_path.into()));
        self
    }

    /// Copies the executable `host_path` to `guest_path` inside, debug info stripped, with the
    /// shared libraries `ldd` lists at their own paths.
    pub fn binary(mut self, host_path: impl Into<PathBuf>, guest_path: impl Into<String>) -> Self {
        self.binaries.push((host_path.into(), guest_path.into()));
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The whole run's limit, the outer boot included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The outer host's memory.
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }
}

/// What a [`Job`] left behind.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The command's exit status.
    pub exit_code: i32,
    /// The command's stdout and stderr, interleaved as written.
    pub output: String,
    /// Files the command left in [`Job::RESULTS_DIR`], by name.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Everything the outer host printed on its serial console (its kernel, our init, the
    /// command's output).
    pub serial: String,
    /// From QEMU's start to the outer host's power-off.
    pub elapsed: Duration,
    /// From QEMU's start to the command's start (outer boot and module loading).
    pub boot: Duration,
}

/// Marker lines the outer init prints; nothing else starts with this.
pub(crate) const MARK: &str = "@@kvmhost@@";

/// The outer host's `/init`: mounts, loads the KVM modules in order, runs the job with its
/// output both on the console (live, for hung runs) and in a file (exact, for the outcome),
/// then dumps the outcome between markers and powers off.
fn init_script() -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /root
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
ip link set lo up 2>/dev/null
while read -r m; do
    insmod "/kvmhost/modules/$m" || echo "{MARK} insmod $m failed"
done </kvmhost/modules/modules.order
if [ ! -c /dev/kvm ]; then
    dmesg | tail -n 30
    ls -l /dev/kvm /dev | head -n 20
    echo "{MARK} NOKVM"
    poweroff -f
fi
mkdir -p {results}
echo "{MARK} BEGIN"
( cd /tmp && sh /kvmhost/job.sh; echo $? >/kvmhost/rc ) 2>&1 | tee /kvmhost/output
echo "{MARK} EXIT $(cat /kvmhost/rc)"
for f in {results}/*; do
    [ -f "$f" ] || continue
    echo "{MARK} FILE ${{f##*/}}"
    base64 "$f"
done
echo "{MARK} OUTPUT"
base64 /kvmhost/output
echo "{MARK} DONE"
sync
poweroff -f
"#,
        results = Job::RESULTS_DIR
    )
}

/// `sh` single-quoting.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn job_script(job: &Job) -> String {
    let mut s = String::new();
    for (k, v) in &job.env {
        s.push_str(&format!("export {k}={}\n", quote(v)));
    }
    s.push_str(&job.command);
    s.push('\n');
    s
}

/// The shared libraries `ldd` lists for `binary` (the loader too); none for a static one.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, RunError> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| RunError::Setup(format!("running ldd {}: {e}", binary.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// A copy of `binary` without debug info (test binaries carry tens of MiB of it).
fn stripped(binary: &Path, dir: &Path, n: usize) -> Result<PathBuf, RunError> {
    let out = dir.join(format!("bin{n}"));
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(binary)
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => Ok(out),
        // No binutils: carry it as it is.
        _ => Ok(binary.to_path_buf()),
    }
}

fn relative(guest_path: &str) -> Result<&str, RunError> {
    guest_path
        .strip_prefix('/')
        .filter(|p| !p.is_empty())
        .ok_or_else(|| RunError::Setup(format!("{guest_path:?}: guest paths must be absolute")))
}

/// Writes the outer initramfs for `job` into `path`.
pub(crate) fn write_initramfs(
    job: &Job,
    outer: &crate::outer::OuterKernel,
    scratch: &Path,
    path: &Path,
) -> Result<(), RunError> {
    let mut cpio = CpioWriter::create(path)?;
    cpio.file_from("bin/busybox", 0o755, Path::new(BUSYBOX))?;
    cpio.file("init", 0o755, init_script().as_bytes())?;
    cpio.file("kvmhost/job.sh", 0o755, job_script(job).as_bytes())?;
    cpio.file(
        "kvmhost/modules/modules.order",
        0o644,
        format!("{}\n", outer.module_order.join("\n")).as_bytes(),
    )?;
    for m in &outer.module_order {
        cpio.file_from(&format!("kvmhost/modules/{m}"), 0o644, &outer.dir.join(m))?;
    }
    let mut libs = std::collections::BTreeSet::new();
    for (n, (host, guest)) in job.binaries.iter().enumerate() {
        libs.extend(shared_libraries(host)?);
        let copy = stripped(host, scratch, n)?;
        cpio.file_from(relative(guest)?, 0o755, &copy)?;
    }
    for lib in libs {
        // Copied under the name ldd gave (the loader finds them there), content followed
        // through symlinks.
        let name = lib.to_string_lossy().into_owned();
        cpio.file_from(relative(&name)?, 0o755, &lib)?;
    }
    for (host, guest) in &job.files {
        use std::os::unix::fs::PermissionsExt;
        let perm = std::fs::metadata(host)
            .map_err(|e| RunError::Setup(format!("{}: {e}", host.display())))?
            .permissions()
            .mode()
            & 0o7777;
        cpio.file_from(relative(guest)?, perm, host)?;
    }
    cpio.finish()?;
    Ok(())
}

/// busybox-static (Debian package `busybox-static`): the outer host's userland.
pub(crate) const BUSYBOX: &str = "/bin/busybox";

use crate::outer::RunError;
