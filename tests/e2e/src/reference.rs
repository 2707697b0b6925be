//! [`ReferenceDaemon`]: a private Debian `dockerd` (20.10), the oracle that tests compare
//! vmrund with, on its own socket and data root, without a bridge or iptables rules,
//! with `busybox:latest` loaded from the same image the vmrund tests use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::command::{run_with_timeout, CmdOutput};
use crate::env::has_tool;
use crate::image::busybox_docker_tar;

/// How long dockerd may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A private dockerd; dropping it stops it and removes its directories.
pub struct ReferenceDaemon {
    dir: PathBuf,
    child: Child,
}

impl ReferenceDaemon {
    /// Starts one with busybox loaded, or returns why it cannot run here (the caller
    /// reports the skip): dockerd missing, or it did not come up.
    pub fn start() -> Result<ReferenceDaemon, String> {
        if !has_tool("dockerd") {
            return Err("dockerd not installed (apt-get install docker.io)".into());
        }
        let dir = nix::unistd::mkdtemp("/tmp/vmref-XXXXXX").map_err(|e| format!("mkdtemp: {e}"))?;
        let log = std::fs::File::create(dir.join("dockerd.log")).map_err(|e| e.to_string())?;
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}", dir.join("d.sock").display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("x"))
            .arg("--pidfile")
            .arg(dir.join("d.pid"))
            .args(["--bridge", "none", "--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting dockerd: {e}"))?;
        let daemon = ReferenceDaemon { dir, child };
        let deadline = Instant::now() + START_TIMEOUT;
        while !daemon.docker(&["version"]).success() {
            if Instant::now() > deadline {
                return Err(format!(
                    "dockerd did not answer within {START_TIMEOUT:?}: {}",
                    daemon.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let tar = busybox_docker_tar();
        let load = daemon.docker(&["load", "-i", tar.to_str().unwrap_or_default()]);
        if !load.success() {
            return Err(format!("docker load into dockerd failed: {load}"));
        }
        Ok(daemon)
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `docker -H unix://<socket> args...`, not run yet.
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("-H")
            .arg(format!("unix://{}", self.dir.join("d.sock").display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT");
        cmd
    }

    /// Runs the docker CLI against it.
    pub fn docker(&self, args: &[&str]) -> CmdOutput {
        run_with_timeout(self.docker_cmd(args), None, Duration::from_secs(120))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ReferenceDaemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::cleanup::unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
