//! [`Registry`]: a real anonymous registry (Debian's `docker-registry`, CNCF
//! distribution) serving plain HTTP on 127.0.0.1, with helpers to put images
//! into it (skopeo) and to talk to its API directly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::command::run_with_timeout;
use crate::env::require_tool;
use crate::free_port;

/// Where Debian installs the registry.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// Deadline of a skopeo copy.
const COPY_TIMEOUT: Duration = Duration::from_secs(120);

/// A registry killed on drop.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: PathBuf,
    child: Child,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry's answer to [`Registry::http`].
#[derive(Debug)]
pub struct RegistryResponse {
    /// HTTP status.
    pub status: u16,
    /// The raw header block.
    pub headers: String,
    /// The body.
    pub body: Vec<u8>,
}

impl RegistryResponse {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

impl Registry {
    /// Starts an anonymous registry storing under `dir`; `None` (reason
    /// printed) when it or skopeo is missing.
    pub fn start(dir: &Path) -> Option<Registry> {
        Registry::start_with_auth(dir, None)
    }

    /// Starts a registry storing under `dir`, with htpasswd (basic) auth for
    /// `user` = (name, password) when given; `None` (reason printed) when it,
    /// skopeo or htpasswd is missing.
    pub fn start_with_auth(dir: &Path, user: Option<(&str, &str)>) -> Option<Registry> {
        if !Path::new(REGISTRY_BIN).exists() {
            eprintln!("skipping: {REGISTRY_BIN} is missing (apt-get install docker-registry)");
            return None;
        }
        if !require_tool("skopeo") || (user.is_some() && !require_tool("htpasswd")) {
            return None;
        }
        std::fs::create_dir_all(dir).expect("creating the registry directory");
        let addr = format!("127.0.0.1:{}", free_port());
        let auth = match user {
            None => String::new(),
            Some((name, password)) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", name, password])
                    .output()
                    .expect("running htpasswd");
                assert!(out.status.success(), "htpasswd failed");
                let path = dir.join("htpasswd");
                std::fs::write(&path, &out.stdout).expect("writing htpasswd");
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
        std::fs::write(&config_path, config).expect("writing the registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("creating the log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let registry = Registry {
            addr,
            dir: dir.to_owned(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&registry.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not start: {}",
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(registry)
    }

    /// The registry's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Copies the image of the OCI archive `tar` to `repo_tag` (`e2e/x:1`) with skopeo.
    pub fn push_oci_archive(&self, tar: &Path, repo_tag: &str) {
        self.push_oci_archive_as(tar, repo_tag, None);
    }

    /// As [`Registry::push_oci_archive`], logged in as `creds` (`user:password`) if given.
    pub fn push_oci_archive_as(&self, tar: &Path, repo_tag: &str, creds: Option<&str>) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy", "--quiet"])
            .arg(format!("oci-archive:{}", tar.display()))
            .arg(format!("docker://{}/{repo_tag}", self.addr))
            .arg("--dest-tls-verify=false");
        if let Some(c) = creds {
            cmd.arg(format!("--dest-creds={c}"));
        }
        let out = run_with_timeout(cmd, None, COPY_TIMEOUT);
        assert!(out.success(), "skopeo copy failed: {out}\n{}", self.log());
    }

    /// One request to the registry's API (`/v2/...`), read to the end.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> RegistryResponse {
        let mut stream = TcpStream::connect(&self.addr).expect("connecting to the registry");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).expect("sending");
        stream.write_all(body).expect("sending the body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("reading the answer");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header in {:?}", String::from_utf8_lossy(&raw)));
        let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = headers
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {headers:?}"));
        RegistryResponse {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    /// The manifest `reference` of `repo` as the registry serves it (OCI or
    /// docker types accepted): its `Docker-Content-Digest` and bytes.
    pub fn manifest(&self, repo: &str, reference: &str) -> (String, Vec<u8>) {
        let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
        let r = self.http(
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", accept)],
            b"",
        );
        assert_eq!(r.status, 200, "GET manifest {repo}:{reference}: {r:?}");
        let digest = r
            .header("Docker-Content-Digest")
            .unwrap_or_else(|| panic!("no Docker-Content-Digest in {}", r.headers));
        (digest, r.body)
    }

    /// Puts `body` as the manifest `reference` of `repo`; returns the registry's digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let r = self.http(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            body,
        );
        assert_eq!(
            r.status,
            201,
            "PUT manifest {repo}:{reference}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.header("Docker-Content-Digest")
            .unwrap_or_else(|| panic!("no Docker-Content-Digest in {}", r.headers))
    }
}
