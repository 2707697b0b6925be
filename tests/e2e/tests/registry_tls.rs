//! `docker pull` through vmrund from a real registry (Debian's `docker-registry`)
//! serving HTTPS on 127.0.0.1 with a certificate from a CA made here (`openssl`),
//! trusted through the daemon's `--certs-dir`; `docker info` shows the registry settings.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vmrun_e2e::{busybox_tar, require_root, require_tool, run_with_timeout, Daemon, DaemonOptions};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const PULL_TIMEOUT: Duration = Duration::from_secs(120);
const MIRROR: &str = "https://mirror.vmrun.test:5443";

/// A directory removed on drop, and the HTTPS registry in it, killed on drop.
struct TlsRegistry {
    addr: String,
    dir: PathBuf,
    child: Child,
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TlsRegistry {
    /// A CA (`ca.crt`), a server certificate for 127.0.0.1 signed by it, and an
    /// anonymous registry serving HTTPS with it.
    fn start() -> TlsRegistry {
        let dir = nix::unistd::mkdtemp("/tmp/vmrun-tls-XXXXXX").expect("mkdtemp");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-days",
            "2",
            "-subj",
            "/CN=vmrun-e2e-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&dir, &ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        openssl(&dir, &csr);
        std::fs::write(
            dir.join("server.ext"),
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "1",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n  tls:\n    certificate: {}\n    key: {}\n",
            dir.join("storage").display(),
            dir.join("server.crt").display(),
            dir.join("server.key").display(),
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = TlsRegistry { addr, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&registry.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    fn push_busybox(&self, repo_tag: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy", "--quiet"])
            .arg(format!("oci-archive:{}", busybox_tar().display()))
            .arg(format!("docker://{}/{repo_tag}", self.addr))
            .arg("--dest-tls-verify=false");
        let out = run_with_timeout(cmd, None, PULL_TIMEOUT);
        assert!(out.success(), "skopeo copy failed: {out}\n{}", self.log());
    }
}

#[test]
fn docker_pull_trusts_the_ca_in_certs_dir_and_info_shows_registry_settings() {
    if !require_root() || !require_tool("openssl") || !require_tool("skopeo") {
        return;
    }
    if !Path::new(REGISTRY_BIN).exists() {
        eprintln!("skipping: {REGISTRY_BIN} is missing (apt-get install docker-registry)");
        return;
    }
    let registry = TlsRegistry::start();
    registry.push_busybox("test/busybox:tls");
    let certs_dir = registry.dir.join("certs.d");
    std::fs::create_dir_all(&certs_dir).unwrap();
    let d = Daemon::start_with(DaemonOptions {
        load_busybox: false,
        extra_args: vec![
            "--certs-dir".into(),
            certs_dir.display().to_string(),
            "--registry-mirror".into(),
            MIRROR.into(),
            "--insecure-registry".into(),
            "10.99.0.0/16".into(),
        ],
        ..DaemonOptions::default()
    });
    let image = format!("{}/test/busybox:tls", registry.addr);

    // Not trusted yet: the error says where the CA goes.
    let out = run_with_timeout(d.docker_cmd(&["pull", &image]), None, PULL_TIMEOUT);
    assert!(!out.success(), "{out}");
    let wanted = format!("{}/{}/ca.crt", certs_dir.display(), registry.addr);
    assert!(out.stderr.contains("not trusted"), "{out}");
    assert!(out.stderr.contains(&wanted), "{out}");

    std::fs::create_dir_all(certs_dir.join(&registry.addr)).unwrap();
    std::fs::copy(
        registry.dir.join("ca.crt"),
        certs_dir.join(&registry.addr).join("ca.crt"),
    )
    .unwrap();
    let out = run_with_timeout(d.docker_cmd(&["pull", &image]), None, PULL_TIMEOUT);
    out.ok();
    assert!(out.stdout.contains("Pull complete"), "{out}");
    let out = d.docker(&["run", "--rm", &image, "echo", "pulled over TLS"]);
    out.ok();
    assert_eq!(out.stdout, "pulled over TLS\n", "{out}");

    let out = d.docker(&["info", "--format", "{{json .RegistryConfig}}"]);
    out.ok();
    let config: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
    assert_eq!(
        config["Mirrors"],
        serde_json::json!([format!("{MIRROR}/")]),
        "{config}"
    );
    assert_eq!(
        config["IndexConfigs"]["docker.io"]["Mirrors"],
        serde_json::json!([format!("{MIRROR}/")])
    );
    let cidrs = config["InsecureRegistryCIDRs"].as_array().expect("CIDRs");
    assert!(
        cidrs.contains(&serde_json::json!("10.99.0.0/16")),
        "{config}"
    );
    assert!(
        cidrs.contains(&serde_json::json!("127.0.0.0/8")),
        "{config}"
    );
    let out = d.docker(&["info"]);
    out.ok();
    assert!(out.stdout.contains("Registry Mirrors:"), "{out}");
    assert!(out.stdout.contains(MIRROR), "{out}");
}
