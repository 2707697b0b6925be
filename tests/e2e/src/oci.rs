//! Real OCI runtime clients driving `vmrun-runtime`: a private containerd 1.6
//! (Debian's `containerd`, its runc shim `io.containerd.runc.v2` given our
//! binary as `BinaryName` through `ctr --runc-binary`) and podman 4.3
//! (Debian's `podman`, `--runtime`), each on its own directories and
//! sockets, never the system's; busybox comes from the harness's own image
//! tars ([`crate::image`]), never from a registry.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::cleanup::{kill_all, pids_mentioning, unmount_under};
use crate::command::{run_with_timeout, CmdOutput};
use crate::env::has_tool;
use crate::image::{busybox_docker_tar, busybox_tar};

/// The busybox reference containerd knows after import.
pub const CTR_BUSYBOX: &str = "docker.io/library/busybox:latest";
/// The image podman knows after `podman load`.
pub const PODMAN_BUSYBOX: &str = "localhost/busybox:latest";

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The `vmrun-runtime` binary: in `VMRUN_BIN_DIR`, else next to the test
/// executable's `deps/` (build it with `cargo build -p vmrun-runtime`).
pub fn runtime_binary() -> PathBuf {
    built_binary("vmrun-runtime", "vmrun-runtime")
}

/// The containerd shim `containerd-shim-vmrun-v2` (build it with
/// `cargo build -p vmrun-containerd-shim`), found as [`runtime_binary`] is.
pub fn shim_binary() -> PathBuf {
    built_binary("containerd-shim-vmrun-v2", "vmrun-containerd-shim")
}

/// The guest kernel and agent initramfs the VM shims boot (the shim built first), or
/// `None` after saying why not (not root, no kernel, no static agent).
pub fn shim_guest_assets() -> Option<(PathBuf, PathBuf)> {
    if !crate::require_root() {
        return None;
    }
    shim_binary();
    let assets =
        vmrun_vmtest::guest_kernel().and_then(|k| Ok((k, vmrun_vmtest::agent_initramfs()?)));
    match assets {
        Ok(a) => Some(a),
        Err(why) => {
            vmrun_test_skip::report(why.0);
            None
        }
    }
}

/// This machine's boot id (`/proc/sys/kernel/random/boot_id`): a task printing another
/// one ran on another kernel.
pub fn host_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("reading the host's boot id")
        .trim()
        .to_string()
}

/// `vmrun-shim` (build it with `cargo build -p vmrun-shim`), found as [`runtime_binary`]
/// is: the per-container monitor the agent runs.
pub fn vmrun_shim_binary() -> PathBuf {
    built_binary("vmrun-shim", "vmrun-shim")
}

/// Binary `name` of cargo package `package` in [`binaries_dir`].
fn built_binary(name: &str, package: &str) -> PathBuf {
    let bin = binaries_dir().join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build -p {package}` \
         (same target directory) or set VMRUN_BIN_DIR",
        bin.display()
    );
    bin
}

/// `VMRUN_BIN_DIR`, else the directory of the test executable's `deps/`.
fn binaries_dir() -> PathBuf {
    match std::env::var_os("VMRUN_BIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let exe = std::env::current_exe().expect("current_exe");
            let deps = exe.parent().expect("test executable has a directory");
            if deps.file_name().is_some_and(|n| n == "deps") {
                deps.parent().expect("deps has a parent").to_path_buf()
            } else {
                deps.to_path_buf()
            }
        }
    }
}

/// A unique short name for this process (namespaces, directories).
fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes `/sys/fs/cgroup/<hierarchy>/<relative>` trees (deepest first)
/// after killing what is left in them.
fn remove_cgroup_tree(relative: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let top = h.path().join(relative.trim_start_matches('/'));
        if !top.is_dir() {
            continue;
        }
        let mut dirs = vec![top.clone()];
        let mut i = 0;
        while i < dirs.len() {
            if let Ok(entries) = std::fs::read_dir(&dirs[i]) {
                dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
            i += 1;
        }
        for dir in dirs.iter().rev() {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<i32> = procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            kill_all(&pids);
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A private containerd: own root, state, sockets; CRI off unless
/// [`Containerd::start_with_cri`] started it.
pub struct Containerd {
    dir: PathBuf,
    child: Child,
    /// The containerd namespace the tests use (also the cgroup parent `/<ns>`, except
    /// under the CRI, whose namespace is `k8s.io` and whose containers run in VMs).
    pub namespace: String,
    /// `--runc-root` for tasks: the runtime's state root, under `dir`.
    pub runtime_root: PathBuf,
    /// The host's `/sys/fs/cgroup/*/<namespace>` trees are this instance's own.
    owns_cgroups: bool,
}

/// The CRI plugin's part of a containerd's configuration: given containerd's directory,
/// writes what the plugin needs under it and returns the TOML tables to append.
pub type CriConfig<'a> = &'a dyn Fn(&Path) -> Result<String, String>;

impl Containerd {
    /// Starts one and imports busybox, or says why it cannot run here.
    pub fn start() -> Result<Containerd, String> {
        Self::start_with_env(&[])
    }

    /// [`Containerd::start`] with `env` added to containerd's environment (its shims
    /// inherit it).
    pub fn start_with_env(env: &[(&str, &Path)]) -> Result<Containerd, String> {
        Self::start_configured(&[], env, None)
    }

    /// [`Containerd::start_with_env`] with `dirs` first on containerd's `PATH` (where it
    /// finds shims by runtime name).
    pub fn start_with_path_and_env(
        dirs: &[&Path],
        env: &[(&str, &Path)],
    ) -> Result<Containerd, String> {
        Self::start_configured(dirs, env, None)
    }

    /// [`Containerd::start_with_env`] with the CRI plugin on, configured by `cri`, and
    /// the CRI's namespace `k8s.io` as the tests' (busybox is imported there).
    pub fn start_with_cri(env: &[(&str, &Path)], cri: CriConfig) -> Result<Containerd, String> {
        Self::start_configured(&[], env, Some(cri))
    }

    fn start_configured(
        dirs: &[&Path],
        env: &[(&str, &Path)],
        cri: Option<CriConfig>,
    ) -> Result<Containerd, String> {
        for tool in ["containerd", "ctr", "containerd-shim-runc-v2"] {
            if !has_tool(tool) {
                return Err(format!(
                    "`{tool}` not installed (apt-get install containerd)"
                ));
            }
        }
        let dir = nix::unistd::mkdtemp("/tmp/vmctd-XXXXXX").map_err(|e| format!("mkdtemp: {e}"))?;
        // Top-level keys come before the first table.
        let (top, plugins) = match cri {
            Some(cri) => match cri(&dir) {
                Ok(tables) => (String::new(), tables),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            },
            None => (
                "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n".into(),
                String::new(),
            ),
        };
        let config = format!(
            "version = 2\n\
             root = \"{d}/root\"\n\
             state = \"{d}/state\"\n\
             {top}\
             [grpc]\n  address = \"{d}/c.sock\"\n\
             [ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\
             [debug]\n  address = \"\"\n\
             [metrics]\n  address = \"\"\n\
             {plugins}",
            d = dir.display()
        );
        std::fs::write(dir.join("config.toml"), config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("containerd.log")).map_err(|e| e.to_string())?;
        // containerd finds runtime `io.containerd.vmrun.v2` as `containerd-shim-vmrun-v2`
        // on its PATH: put the build's binaries first.
        let path = std::env::join_paths(
            dirs.iter()
                .map(|d| d.to_path_buf())
                .chain(std::iter::once(binaries_dir()))
                .chain(std::env::split_paths(
                    &std::env::var_os("PATH").unwrap_or_default(),
                )),
        )
        .map_err(|e| e.to_string())?;
        let child = Command::new("containerd")
            .env("PATH", path)
            .envs(env.iter().copied())
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting containerd: {e}"))?;
        let ctd = Containerd {
            runtime_root: dir.join("vmrun-runtime"),
            dir,
            child,
            namespace: if cri.is_some() {
                "k8s.io".into()
            } else {
                unique("vmoci")
            },
            owns_cgroups: cri.is_none(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ctd.ctr(&["version"]).success() {
            if Instant::now() > deadline {
                return Err(format!("containerd did not answer: {}", ctd.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let tar = busybox_tar();
        let import = ctd.ctr(&["image", "import", tar.to_str().unwrap_or_default()]);
        if !import.success() {
            return Err(format!("ctr image import failed: {import}"));
        }
        Ok(ctd)
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ttrpc address (`unix://...`) of the shim serving task `id`, as containerd
    /// recorded it.
    pub fn shim_address(&self, id: &str) -> Option<String> {
        let file = self
            .dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.namespace)
            .join(id)
            .join("address");
        std::fs::read_to_string(file)
            .ok()
            .map(|a| a.trim().to_string())
    }

    /// `ctr --address <ours> --namespace <ns> args...`, not run yet.
    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.dir.join("c.sock"))
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args);
        cmd
    }

    /// The STATUS column of `ctr task ls` for task `id` (`RUNNING`, `STOPPED`, …), if listed.
    pub fn task_status(&self, id: &str) -> Option<String> {
        let ls = self.ctr(&["task", "ls"]);
        ls.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .map(str::to_owned)
    }

    /// Runs `ctr`.
    pub fn ctr(&self, args: &[&str]) -> CmdOutput {
        self.ctr_within(CLIENT_TIMEOUT, args)
    }

    /// Runs `ctr` with deadline `timeout` (a task that boots a VM).
    pub fn ctr_within(&self, timeout: Duration, args: &[&str]) -> CmdOutput {
        run_with_timeout(self.ctr_cmd(args), None, timeout)
    }

    /// The flags that make a task use `runtime` (`--runc-binary`, i.e. the
    /// runc shim's `BinaryName`) with its state under our directory.
    pub fn runtime_flags(&self, runtime: &Path) -> Vec<String> {
        vec![
            "--runc-binary".into(),
            runtime.display().to_string(),
            "--runc-root".into(),
            self.runtime_root.display().to_string(),
        ]
    }

    /// The last lines of containerd's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Tasks first (their shims outlive containerd), then containerd.
        let tasks = self.ctr(&["task", "ls", "-q"]);
        for id in tasks
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
            let _ = self.ctr(&["task", "delete", "-f", id]);
        }
        let containers = self.ctr(&["container", "ls", "-q"]);
        for id in containers
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let _ = self.ctr(&["container", "rm", id]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_all(&pids_mentioning(&self.dir.display().to_string()));
        if self.owns_cgroups {
            remove_cgroup_tree(&self.namespace);
        }
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// podman with its own storage, run and tmp directories, cgroupfs, no
/// network, and `vmrun-runtime` as runtime (state in its default root:
/// container ids are podman's random 64-hex ones).
pub struct Podman {
    dir: PathBuf,
    runtime: PathBuf,
    /// The cgroup parent of this instance's containers.
    cgroup_parent: String,
}

impl Podman {
    /// Prepares one and loads busybox, or says why it cannot run here.
    pub fn start(runtime: &Path) -> Result<Podman, String> {
        for tool in ["podman", "conmon"] {
            if !has_tool(tool) {
                return Err(format!("`{tool}` not installed (apt-get install podman)"));
            }
        }
        let dir = nix::unistd::mkdtemp("/tmp/vmpod-XXXXXX").map_err(|e| format!("mkdtemp: {e}"))?;
        let podman = Podman {
            dir,
            runtime: runtime.to_path_buf(),
            cgroup_parent: unique("vmpod"),
        };
        let tar = busybox_docker_tar();
        let load = podman.podman(&["load", "-i", tar.to_str().unwrap_or_default()]);
        if !load.success() {
            return Err(format!("podman load failed: {load}"));
        }
        Ok(podman)
    }

    /// `podman <isolation flags> args...`, not run yet.
    pub fn podman_cmd(&self, args: &[&str]) -> Command {
        let d = &self.dir;
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .arg("--runtime")
            .arg(&self.runtime)
            .args(args)
            .env("XDG_RUNTIME_DIR", d.join("xdg"))
            .env("XDG_CONFIG_HOME", d.join("config"));
        cmd
    }

    /// Runs podman.
    pub fn podman(&self, args: &[&str]) -> CmdOutput {
        run_with_timeout(self.podman_cmd(args), None, CLIENT_TIMEOUT)
    }

    /// `podman run` flags every test container gets: no network (nothing
    /// touches the host's), a cgroup parent of this instance's own, and
    /// ulimits within this machine's hard limit (podman's default
    /// nproc/nofile exceed it; runc needs the same here).
    pub fn run_flags(&self) -> Vec<String> {
        vec![
            "--network".into(),
            "none".into(),
            format!("--cgroup-parent=/{}", self.cgroup_parent),
            "--ulimit".into(),
            "nofile=1024:1024".into(),
            "--ulimit".into(),
            "nproc=1024:1024".into(),
        ]
    }

    /// The runtime's state root under podman: the default one, as podman's
    /// `container cleanup` (run by conmon at exit) calls `delete --force`
    /// without the `--runtime-flag`s given to the first command.
    pub fn runtime_root() -> PathBuf {
        PathBuf::from("/run/vmrun-runtime")
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        kill_all(&pids_mentioning(&self.dir.display().to_string()));
        remove_cgroup_tree(&self.cgroup_parent);
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An OCI bundle in its own directory: Debian's static busybox as the
/// rootfs and `vmrun-runtime spec`'s config.json with `args`, no terminal,
/// and a cgroup of its own; dropping it removes the cgroup and directory.
pub struct OciBundle {
    /// The bundle directory.
    pub dir: PathBuf,
    cgroup: String,
}

impl OciBundle {
    /// Makes one, or says why it cannot.
    pub fn new(runtime: &Path, args: &[&str]) -> Result<OciBundle, String> {
        let dir = nix::unistd::mkdtemp("/tmp/vmoci-XXXXXX").map_err(|e| format!("mkdtemp: {e}"))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bundle = OciBundle {
            dir,
            cgroup: format!("vmrun-oci-test/{name}"),
        };
        let bin = bundle.dir.join("rootfs/bin");
        std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
        std::fs::copy("/bin/busybox", bin.join("busybox"))
            .map_err(|e| format!("copying /bin/busybox (apt-get install busybox-static): {e}"))?;
        for applet in ["sh", "sleep", "echo", "true", "cat", "tty"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).map_err(|e| e.to_string())?;
        }
        let spec = Command::new(runtime)
            .args(["spec", "--bundle"])
            .arg(&bundle.dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !spec.status.success() {
            return Err(format!("spec: {}", String::from_utf8_lossy(&spec.stderr)));
        }
        let path = bundle.dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let mut config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| e.to_string())?;
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = args.into();
        config["linux"]["cgroupsPath"] = format!("/{}", bundle.cgroup).into();
        std::fs::write(&path, config.to_string()).map_err(|e| e.to_string())?;
        Ok(bundle)
    }
}

impl Drop for OciBundle {
    fn drop(&mut self) {
        remove_cgroup_tree(&self.cgroup);
        // The shared parent goes once empty (fails harmlessly while not).
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                let _ = std::fs::remove_dir(h.path().join("vmrun-oci-test"));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
