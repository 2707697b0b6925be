//! A real registry (Debian's `docker-registry`, CNCF distribution) on
//! 127.0.0.1, configured and started per test, plus helpers that push blobs
//! and manifests into it over the distribution API.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How the registry authenticates clients.
pub enum Auth {
    Anonymous,
    /// htpasswd with one user.
    Basic {
        user: String,
        password: String,
    },
    /// `auth.token`: tokens from `realm`, signed by the key of `cert` (PEM).
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert: PathBuf,
    },
}

/// TLS settings of a registry (`http.tls`).
#[derive(Clone, Debug)]
pub struct Tls {
    /// Server certificate and key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CAs of required client certificates (`http.tls.clientcas`); empty: none required.
    pub client_cas: Vec<PathBuf>,
}

pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Where the registry keeps its data (`docker/registry/v2/...`).
    pub storage: PathBuf,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn have_tools(tools: &[&str]) -> bool {
    for tool in tools {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            vmrun_test_skip::report(format_args!("{tool} is not installed"));
            return false;
        }
    }
    true
}

impl Registry {
    /// Starts a registry; `None` (reason printed) when the binary is missing.
    pub fn start(auth: Auth) -> Option<Registry> {
        Self::launch(auth, false)
    }

    /// Like [`Registry::start`], with the access log (one line per request) in [`Registry::log`].
    pub fn start_with_access_log(auth: Auth) -> Option<Registry> {
        Self::launch(auth, true)
    }

    /// Like [`Registry::start`], serving HTTPS as `tls` says.
    pub fn start_tls(auth: Auth, tls: Tls) -> Option<Registry> {
        Self::launch_with(auth, false, Some(tls))
    }

    fn launch(auth: Auth, access_log: bool) -> Option<Registry> {
        Self::launch_with(auth, access_log, None)
    }

    fn launch_with(auth: Auth, access_log: bool, tls: Option<Tls>) -> Option<Registry> {
        if !Path::new(REGISTRY_BIN).exists() {
            vmrun_test_skip::report(format_args!(
                "{REGISTRY_BIN} is missing (apt-get install docker-registry)"
            ));
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let auth_yaml = match &auth {
            Auth::Anonymous => String::new(),
            Auth::Basic { user, password } => {
                if !have_tools(&["htpasswd"]) {
                    return None;
                }
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .unwrap();
                assert!(out.status.success());
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, &out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: vmrun-test\n    path: {}\n",
                    path.display()
                )
            }
            Auth::Token {
                realm,
                service,
                issuer,
                cert,
            } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                cert.display()
            ),
        };
        let tls_yaml = match &tls {
            None => String::new(),
            Some(t) => {
                let mut y = format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    t.cert.display(),
                    t.key.display()
                );
                if !t.client_cas.is_empty() {
                    y.push_str("    clientcas:\n");
                    for ca in &t.client_cas {
                        y.push_str(&format!("      - {}\n", ca.display()));
                    }
                }
                y
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: {}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls_yaml}{auth_yaml}",
            !access_log,
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry {
            addr,
            storage,
            dir,
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `skopeo copy oci-archive:ARCHIVE docker://ADDR/REPO` (plain HTTP).
    pub fn skopeo_push(&self, archive: &Path, repo_tag: &str, creds: Option<&str>) {
        self.skopeo_push_with(archive, repo_tag, creds, None);
    }

    /// Like [`Registry::skopeo_push`]; `cert_dir` holds a client certificate
    /// (`client.cert`/`client.key`) for registries that require one.
    pub fn skopeo_push_with(
        &self,
        archive: &Path,
        repo_tag: &str,
        creds: Option<&str>,
        cert_dir: Option<&Path>,
    ) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy", "--quiet"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{}/{repo_tag}", self.addr))
            .arg("--dest-tls-verify=false");
        if let Some(c) = creds {
            cmd.arg(format!("--dest-creds={c}"));
        }
        if let Some(dir) = cert_dir {
            cmd.arg(format!("--dest-cert-dir={}", dir.display()));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "skopeo copy failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// The file holding a blob in the registry's filesystem storage.
    pub fn blob_data(&self, hex: &str) -> PathBuf {
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Uploads a blob (monolithic), anonymous registries only.
    pub fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = format!("sha256:{}", crate::sha256_hex(data));
        let (status, headers, _) = http(
            &self.addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            b"",
        );
        assert_eq!(status, 202, "starting an upload");
        let location = header(&headers, "location").expect("upload location");
        let path = location
            .strip_prefix(&format!("http://{}", self.addr))
            .unwrap_or(&location)
            .to_owned();
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, _, body) = http(
            &self.addr,
            "PUT",
            &format!("{path}{sep}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            data,
        );
        assert_eq!(
            status,
            201,
            "finishing an upload: {}",
            String::from_utf8_lossy(&body)
        );
        digest
    }

    /// The manifest `reference` of `repo` as the registry serves it (OCI or
    /// docker types accepted): its `Docker-Content-Digest` and bytes.
    pub fn manifest(&self, repo: &str, reference: &str) -> (String, Vec<u8>) {
        let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
        let (status, headers, body) = http(
            &self.addr,
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", accept)],
            b"",
        );
        assert_eq!(status, 200, "GET manifest {repo}:{reference}: {headers}");
        let digest = header(&headers, "Docker-Content-Digest")
            .unwrap_or_else(|| panic!("no Docker-Content-Digest in {headers}"));
        (digest, body)
    }

    /// Puts a manifest under `reference` (tag or digest); returns its digest.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let (status, _, resp) = http(
            &self.addr,
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            body,
        );
        assert_eq!(
            status,
            201,
            "putting a manifest: {}",
            String::from_utf8_lossy(&resp)
        );
        format!("sha256:{}", crate::sha256_hex(body))
    }
}

fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// A minimal HTTP/1.1 client (Connection: close) for the test helpers.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    (status, head, response[split + 4..].to_vec())
}
