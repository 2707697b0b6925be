//! `vmrun pull`, `vmrun login`/`logout` and `run`'s pull of a missing image,
//! against a real registry (Debian's `docker-registry`) on 127.0.0.1.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vmrun_e2e::{busybox_tar, require_root, require_tool, run_with_timeout, Daemon};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const PULL_TIMEOUT: Duration = Duration::from_secs(120);

/// A registry serving plain HTTP on 127.0.0.1, killed on drop.
struct Registry {
    addr: String,
    dir: PathBuf,
    child: Child,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Starts a registry under `dir`, with htpasswd auth when `user` is given;
    /// `None` (reason printed) when a tool is missing.
    fn start(dir: &Path, user: Option<(&str, &str)>) -> Option<Registry> {
        if !Path::new(REGISTRY_BIN).exists() {
            eprintln!("skipping: {REGISTRY_BIN} is missing (apt-get install docker-registry)");
            return None;
        }
        if !require_tool("skopeo") || (user.is_some() && !require_tool("htpasswd")) {
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let auth = match user {
            None => String::new(),
            Some((name, password)) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", name, password])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "htpasswd failed");
                let path = dir.join("htpasswd");
                std::fs::write(&path, &out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: vmrun-e2e\n    path: {}\n",
                    path.display()
                )
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{auth}",
            dir.join("storage").display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry {
            addr,
            dir: dir.to_owned(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&registry.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(registry)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Pushes the e2e busybox image as `repo_tag` with skopeo.
    fn push_busybox(&self, repo_tag: &str, creds: Option<&str>) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy", "--quiet"])
            .arg(format!("oci-archive:{}", busybox_tar().display()))
            .arg(format!("docker://{}/{repo_tag}", self.addr))
            .arg("--dest-tls-verify=false");
        if let Some(c) = creds {
            cmd.arg(format!("--dest-creds={c}"));
        }
        let out = run_with_timeout(cmd, None, PULL_TIMEOUT);
        assert!(out.success(), "skopeo copy failed: {out}\n{}", self.log());
    }
}

/// `vmrun` with `DOCKER_CONFIG` pointing at `config_dir`.
fn vmrun_with_config(d: &Daemon, config_dir: &Path, args: &[&str]) -> vmrun_e2e::CmdOutput {
    let mut cmd = d.vmrun_cmd(args);
    cmd.env("DOCKER_CONFIG", config_dir);
    run_with_timeout(cmd, None, PULL_TIMEOUT)
}

#[test]
fn pull_renders_progress_and_the_image_runs() {
    if !require_root() {
        return;
    }
    let d = Daemon::start_empty();
    let Some(registry) = Registry::start(&d.dir().join("registry"), None) else {
        return;
    };
    registry.push_busybox("test/busybox:1", None);
    registry.push_busybox("test/busybox:2", None);
    let config = d.dir().join("docker-config");
    let image = format!("{}/test/busybox:1", registry.addr);

    let out = vmrun_with_config(&d, &config, &["pull", &image]);
    out.ok();
    assert!(out.stdout.contains("1: Pulling from test/busybox"), "{out}");
    assert!(out.stdout.contains(": Pull complete"), "{out}");
    assert!(out.stdout.contains("Digest: sha256:"), "{out}");
    assert!(
        out.stdout
            .contains(&format!("Status: Downloaded newer image for {image}")),
        "{out}"
    );
    assert_eq!(out.stdout.lines().last(), Some(image.as_str()), "{out}");

    let images = d.vmrun(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    images.ok();
    assert!(images.stdout.lines().any(|l| l == image), "{images}");

    // Pulling again changes nothing.
    let again = vmrun_with_config(&d, &config, &["pull", &image]);
    again.ok();
    assert!(
        again
            .stdout
            .contains(&format!("Status: Image is up to date for {image}")),
        "{again}"
    );
    // Quiet: only the reference.
    let quiet = vmrun_with_config(&d, &config, &["pull", "-q", &image]);
    quiet.ok();
    assert_eq!(quiet.stdout, format!("{image}\n"), "{quiet}");

    let run = vmrun_with_config(&d, &config, &["run", "--rm", &image, "echo", "hi"]);
    run.ok();
    assert_eq!(run.stdout, "hi\n", "{run}");

    // `run` of an image not yet here pulls it, progress on stderr.
    let image2 = format!("{}/test/busybox:2", registry.addr);
    let run2 = vmrun_with_config(&d, &config, &["run", "--rm", &image2, "echo", "hi"]);
    run2.ok();
    assert_eq!(run2.stdout, "hi\n", "{run2}");
    // Same layer as tag 1: docker's "Already exists", then the new tag.
    assert!(
        run2.stderr.contains("2: Pulling from test/busybox"),
        "{run2}"
    );
    assert!(run2.stderr.contains(": Already exists"), "{run2}");
    assert!(
        run2.stderr
            .contains(&format!("Status: Downloaded newer image for {image2}")),
        "{run2}"
    );

    // A missing tag: the daemon's message, exit 1.
    let missing = vmrun_with_config(
        &d,
        &config,
        &["pull", &format!("{}/test/busybox:nosuch", registry.addr)],
    );
    missing.code_is(1);
    assert!(missing.stderr.contains("not found"), "{missing}");
}

#[test]
fn login_checks_credentials_and_pull_uses_them() {
    if !require_root() {
        return;
    }
    let d = Daemon::start_empty();
    let Some(registry) = Registry::start(&d.dir().join("registry"), Some(("alice", "s3cret")))
    else {
        return;
    };
    registry.push_busybox("test/busybox:1", Some("alice:s3cret"));
    let config_dir = d.dir().join("docker-config");
    let config_file = config_dir.join("config.json");
    let image = format!("{}/test/busybox:1", registry.addr);

    // Without credentials the pull is refused.
    let refused = vmrun_with_config(&d, &config_dir, &["pull", &image]);
    refused.code_is(1);
    assert!(refused.stderr.contains("unauthorized"), "{refused}");

    let wrong = vmrun_with_config(
        &d,
        &config_dir,
        &["login", "-u", "alice", "-p", "wrong", &registry.addr],
    );
    wrong.code_is(1);
    assert!(wrong.stderr.contains("login attempt failed"), "{wrong}");
    assert!(wrong.stderr.contains("unauthorized"), "{wrong}");
    assert!(
        !config_file.exists(),
        "a failed login wrote {}",
        config_file.display()
    );

    let mut cmd = d.vmrun_cmd(&["login", "-u", "alice", "--password-stdin", &registry.addr]);
    cmd.env("DOCKER_CONFIG", &config_dir);
    let right = run_with_timeout(cmd, Some(b"s3cret\n"), PULL_TIMEOUT);
    right.ok();
    assert!(right.stdout.contains("Login Succeeded"), "{right}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_file).unwrap()).unwrap();
    // base64("alice:s3cret")
    assert_eq!(
        written["auths"][registry.addr.as_str()]["auth"],
        "YWxpY2U6czNjcmV0",
        "{written}"
    );

    // The stored credentials go with the pull.
    let pulled = vmrun_with_config(&d, &config_dir, &["pull", &image]);
    pulled.ok();
    assert!(
        pulled.stdout.contains("Status: Downloaded newer image"),
        "{pulled}"
    );

    let logout = vmrun_with_config(&d, &config_dir, &["logout", &registry.addr]);
    logout.ok();
    assert!(
        logout.stdout.contains("Removing login credentials"),
        "{logout}"
    );
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_file).unwrap()).unwrap();
    assert!(
        after["auths"].get(registry.addr.as_str()).is_none(),
        "{after}"
    );
}
