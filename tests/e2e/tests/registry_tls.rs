//! `docker pull` through vmrund from a real registry (Debian's `docker-registry`)
//! serving HTTPS on 127.0.0.1 with a certificate from a CA made here (`openssl`),
//! trusted through the daemon's `--certs-dir`; `docker info` shows the registry settings.

use std::time::Duration;

use vmrun_e2e::{busybox_tar, require_root, require_tool, run_with_timeout, Daemon, DaemonOptions};
use vmrun_test_registry::pki::Pki;
use vmrun_test_registry::registry::{Auth, Registry, Tls};

const PULL_TIMEOUT: Duration = Duration::from_secs(120);
const MIRROR: &str = "https://mirror.vmrun.test:5443";

#[test]
fn docker_pull_trusts_the_ca_in_certs_dir_and_info_shows_registry_settings() {
    if !require_root() || !require_tool("openssl") || !require_tool("skopeo") {
        return;
    }
    // A CA, a server certificate for 127.0.0.1 signed by it, and an anonymous
    // registry serving HTTPS with it.
    let dir = tempfile::Builder::new()
        .prefix("vmrun-tls")
        .tempdir_in("/tmp")
        .unwrap();
    let Some(pki) = Pki::new(&dir.path().join("pki"), "vmrun-e2e-ca") else {
        return;
    };
    let server = pki.server("server");
    let tls = Tls {
        cert: server.cert,
        key: server.key,
        client_cas: Vec::new(),
    };
    let Some(registry) = Registry::start_tls(Auth::Anonymous, tls) else {
        return;
    };
    registry.skopeo_push(&busybox_tar(), "test/busybox:tls", None);
    let certs_dir = dir.path().join("certs.d");
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
    std::fs::copy(&pki.ca.cert, certs_dir.join(&registry.addr).join("ca.crt")).unwrap();
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
