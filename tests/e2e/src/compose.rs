//! Compose clients against one daemon, for the compose tests: Debian's `docker-compose`
//! 1.29 or `vmrun compose`, on a project directory, with the docker CLI beside them to
//! look at what they made.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::command::{run_with_timeout, CmdOutput};
use crate::env::bin_dir;

/// Which compose implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Debian's docker-compose 1.29.
    DockerCompose,
    /// `vmrun compose`.
    Vmrun,
}

/// A web service (busybox httpd, `restart: always`, a health check, a named volume)
/// and a client gated on its health that fetches from it by service name.
pub const WEB_AND_CLIENT: &str = r#"version: "2.4"
services:
  web:
    image: busybox
    # httpd in the background, the shell as init: killing httpd is a crash (exit 3).
    command: sh -c "mkdir -p /www && echo hello-from-web > /www/index.html && httpd -p 80 -h /www && while pidof httpd >/dev/null; do sleep 0.5; done; exit 3"
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://localhost/index.html"]
      interval: 1s
      retries: 30
    restart: always
    volumes:
      - data:/data
    labels:
      e2e.role: server
  client:
    image: busybox
    command: sh -c "wget -q -O- http://web/index.html && exec sleep 600"
    depends_on:
      web:
        condition: service_healthy
volumes:
  data:
"#;

/// A compose client, a daemon and a project directory.
#[derive(Debug, Clone)]
pub struct ComposeTarget {
    /// `unix://...` of the daemon.
    pub host: String,
    /// The project directory (holds the compose file).
    pub dir: PathBuf,
    /// The project name (`-p`).
    pub project: String,
    /// The compose file's name in `dir`.
    pub file: String,
    /// The implementation.
    pub client: Client,
}

impl ComposeTarget {
    /// docker-compose on `host` for `dir/docker-compose.yml`.
    pub fn docker_compose(host: String, dir: &Path, project: &str) -> Self {
        ComposeTarget {
            host,
            dir: dir.to_path_buf(),
            project: project.to_owned(),
            file: "docker-compose.yml".to_owned(),
            client: Client::DockerCompose,
        }
    }

    /// The same project through another client.
    pub fn with_client(&self, client: Client) -> Self {
        ComposeTarget {
            client,
            ..self.clone()
        }
    }

    /// The compose command with `-p` and `-f`, not run yet.
    pub fn compose_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = match self.client {
            Client::DockerCompose => {
                let mut c = Command::new("docker-compose");
                c.env("DOCKER_HOST", &self.host)
                    .env("COMPOSE_INTERACTIVE_NO_CLI", "1");
                c
            }
            Client::Vmrun => {
                let mut c = Command::new(bin_dir().join("vmrun"));
                c.arg("-H").arg(&self.host).arg("compose");
                c
            }
        };
        cmd.arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(self.dir.join(&self.file))
            .args(args)
            .current_dir(&self.dir)
            .env("DOCKER_CONFIG", self.dir.join("docker-config"));
        cmd
    }

    /// Runs the compose client (3 minutes at most).
    pub fn compose(&self, args: &[&str]) -> CmdOutput {
        run_with_timeout(self.compose_cmd(args), None, Duration::from_secs(180))
    }

    /// Runs the docker CLI against the daemon.
    pub fn docker(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = Command::new("docker");
        cmd.arg("-H")
            .arg(&self.host)
            .args(args)
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env("DOCKER_CLI_HINTS", "false");
        run_with_timeout(cmd, None, Duration::from_secs(60))
    }

    /// Polls `f` every 300 ms for 90 s; panics naming `what` and the daemon after that.
    pub fn until(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} on {} ({:?})",
                self.host,
                self.client
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// `service number oneoff` of each container of the project (running ones only
    /// unless `all`), sorted: what docker compose's labels say, whatever the names.
    pub fn labelled_containers(&self, all: bool) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.project);
        let format = "{{.Label \"com.docker.compose.service\"}} {{.Label \"com.docker.compose.container-number\"}} {{.Label \"com.docker.compose.oneoff\"}}";
        let mut args = vec!["ps", "--filter", &filter, "--format", format];
        if all {
            args.push("-a");
        }
        let mut lines: Vec<String> = self
            .docker(&args)
            .stdout
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    /// The id of the container of `service` number 1.
    pub fn container_id(&self, service: &str) -> String {
        let project = format!("label=com.docker.compose.project={}", self.project);
        let service = format!("label=com.docker.compose.service={service}");
        let number = "label=com.docker.compose.container-number=1";
        self.docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &project,
            "--filter",
            &service,
            "--filter",
            number,
        ])
        .stdout
        .trim()
        .to_owned()
    }

    /// Names of the project's networks and volumes that exist (`<project>_...`).
    pub fn networks_and_volumes(&self) -> (Vec<String>, Vec<String>) {
        let prefix = format!("{}_", self.project);
        let pick = |out: CmdOutput| -> Vec<String> {
            let mut v: Vec<String> = out
                .stdout
                .lines()
                .filter(|l| l.starts_with(&prefix))
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        };
        (
            pick(self.docker(&["network", "ls", "--format", "{{.Name}}"])),
            pick(self.docker(&["volume", "ls", "-q"])),
        )
    }
}

/// `name state` per line of `docker-compose ps` for `project`, e.g. `e2ecompose_web_1 Up (healthy)`.
pub fn ps_states(project: &str, out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with(project))
        .map(|l| {
            let name = l.split_whitespace().next().unwrap_or("");
            let state = if l.contains("Up (healthy)") {
                "Up (healthy)"
            } else if l.contains("Up (health: starting)") {
                "Up (health: starting)"
            } else if l.contains(" Up") {
                "Up"
            } else {
                "other"
            };
            format!("{name} {state}")
        })
        .collect()
}

/// One TCP read from 127.0.0.1:port, retried for 30 s until the service answers.
pub fn read_port(port: u16) -> String {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let mut text = String::new();
            if s.read_to_string(&mut text).is_ok() && !text.is_empty() {
                return text;
            }
        }
        if Instant::now() > deadline {
            return String::new();
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
