//! TLS for registry connections: system roots plus docker's `certs.d` layout, and
//! failures explained.
//!
//! For a registry `host[:port]`, every `<certs_dir>/<host[:port]>/` directory adds:
//! `*.crt` files as extra CA roots, and `NAME.cert` + `NAME.key` pairs as the client
//! certificate (the first pair in name order; a `.cert` without its `.key` or the
//! reverse is an error, as in dockerd).

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::{Certificate, Identity};

use crate::error::{ImageError, IoContext};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The TLS material `certs.d` holds for one registry.
#[derive(Default)]
pub(crate) struct TlsMaterial {
    /// Extra CA roots (`*.crt`).
    pub roots: Vec<Certificate>,
    /// The client certificate and key (`*.cert` + `*.key`).
    pub identity: Option<Identity>,
    /// Files read, for logs.
    pub files: Vec<PathBuf>,
}

/// Reads `<dir>/<host>/` of every dir in `certs_dirs` (missing ones are fine).
pub(crate) fn load(
    certs_dirs: &[PathBuf],
    host: &str,
    registry: &str,
) -> Result<TlsMaterial, ImageError> {
    let mut material = TlsMaterial::default();
    if host.contains('/') || host.starts_with('.') {
        return Ok(material);
    }
    for dir in certs_dirs {
        let host_dir = dir.join(host);
        let entries = match std::fs::read_dir(&host_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).ctx(|| format!("reading {}", host_dir.display())),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            let path = host_dir.join(name);
            if name.ends_with(".crt") {
                let pem = std::fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
                let certs = Certificate::from_pem_bundle(&pem)
                    .map_err(|e| bad_file(registry, &path, &e.to_string()))?;
                if certs.is_empty() {
                    return Err(bad_file(registry, &path, "no PEM certificate in it"));
                }
                material.roots.extend(certs);
                material.files.push(path);
            } else if let Some(stem) = name.strip_suffix(".cert") {
                let key_path = host_dir.join(format!("{stem}.key"));
                if !key_path.exists() {
                    return Err(bad_file(
                        registry,
                        &path,
                        &format!(
                            "client certificate without its key {} (CA certificates must end in .crt)",
                            key_path.display()
                        ),
                    ));
                }
                if material.identity.is_some() {
                    tracing::warn!(
                        registry,
                        "ignoring the extra client certificate {}",
                        path.display()
                    );
                    continue;
                }
                let mut pem =
                    std::fs::read(&key_path).ctx(|| format!("reading {}", key_path.display()))?;
                pem.push(b'\n');
                pem.extend(std::fs::read(&path).ctx(|| format!("reading {}", path.display()))?);
                let identity = Identity::from_pem(&pem)
                    .map_err(|e| bad_file(registry, &path, &error_chain(&e)))?;
                material.identity = Some(identity);
                material.files.push(path);
                material.files.push(key_path);
            } else if let Some(stem) = name.strip_suffix(".key") {
                if !names.contains(&format!("{stem}.cert")) {
                    return Err(bad_file(
                        registry,
                        &path,
                        &format!("key without its client certificate {stem}.cert"),
                    ));
                }
            }
        }
    }
    Ok(material)
}

fn bad_file(registry: &str, path: &Path, why: &str) -> ImageError {
    ImageError::Registry {
        registry: registry.to_owned(),
        message: format!("TLS material {}: {why}", path.display()),
    }
}

/// An HTTP client for one registry endpoint: system roots plus `material`; with
/// `skip_verify` (insecure registries) the server certificate is not checked.
pub(crate) fn http_client(
    material: TlsMaterial,
    skip_verify: bool,
    registry: &str,
) -> Result<Client, ImageError> {
    let mut builder = Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(None)
        .user_agent(concat!("vmrun/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(skip_verify);
    for root in material.roots {
        builder = builder.add_root_certificate(root);
    }
    if let Some(identity) = material.identity {
        builder = builder.identity(identity);
    }
    if !material.files.is_empty() {
        tracing::debug!(registry, files = ?material.files, "registry TLS material");
    }
    builder.build().map_err(|e| ImageError::Registry {
        registry: registry.to_owned(),
        message: format!("creating the HTTP client: {}", error_chain(&e)),
    })
}

/// What kind of TLS failure an error chain shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlsFailure {
    /// The server's certificate does not chain to a trusted root (or names another host).
    Untrusted,
    /// The server wanted a client certificate, or refused ours.
    ClientCertificate,
    /// The server answered the TLS hello with something else (it speaks plain HTTP).
    NotTls,
}

/// The rustls error among `e` and its sources (also inside an `io::Error`, where
/// hyper-rustls puts it), or an end of stream during the handshake.
fn rustls_cause<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<Result<&'a rustls::Error, ()>> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(Ok(r));
        }
        next = err.source();
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // tokio-rustls: the server closed the connection mid-handshake.
            if io.kind() == std::io::ErrorKind::UnexpectedEof
                && io
                    .get_ref()
                    .is_none_or(|i| i.downcast_ref::<rustls::Error>().is_none())
            {
                return Some(Err(()));
            }
            // An `io::Error`'s `source()` skips the error it wraps: look inside.
            if let Some(inner) = io.get_ref() {
                next = Some(inner as &(dyn std::error::Error + 'static));
            }
        }
    }
    None
}

/// Classifies a request failure by the rustls error it holds.
pub(crate) fn classify(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    use rustls::AlertDescription as A;
    match rustls_cause(e)? {
        Ok(rustls::Error::InvalidCertificate(_)) => Some(TlsFailure::Untrusted),
        Ok(rustls::Error::AlertReceived(
            A::CertificateRequired | A::BadCertificate | A::UnknownCA | A::CertificateUnknown,
        )) => Some(TlsFailure::ClientCertificate),
        Ok(rustls::Error::InvalidMessage(_)) | Err(()) => Some(TlsFailure::NotTls),
        Ok(_) => None,
    }
}

/// Where a registry's TLS files go: `<first certs dir>/<host>/`.
fn host_dir_hint(certs_dirs: &[PathBuf], host: &str) -> String {
    match certs_dirs.first() {
        Some(dir) => dir.join(host).display().to_string(),
        None => format!("certs.d/{host} (e.g. /etc/docker/certs.d/{host})"),
    }
}

/// A clear message for a TLS failure `e` of a registry reached at `host` (it goes into
/// an error naming the registry), or `None` when it is not a certificate problem.
pub(crate) fn explain(
    e: &(dyn std::error::Error + 'static),
    host: &str,
    certs_dirs: &[PathBuf],
) -> Option<String> {
    let chain = error_chain(e);
    let chain = chain.as_str();
    let dir = host_dir_hint(certs_dirs, host);
    match classify(e)? {
        TlsFailure::Untrusted => Some(format!(
            "its TLS certificate is not trusted ({}): put the CA certificate that signed \
             it in {dir}/ca.crt, or list {host} as an insecure registry",
            detail(chain, "invalid peer certificate")
        )),
        TlsFailure::ClientCertificate => Some(format!(
            "it refused the TLS client certificate or wants one ({}): put the client \
             certificate in {dir}/client.cert and its key in {dir}/client.key",
            detail(chain, "received fatal alert")
        )),
        TlsFailure::NotTls => None,
    }
}

/// The part of `chain` from `marker` on (rustls puts the reason last), or the whole chain.
fn detail<'a>(chain: &'a str, marker: &str) -> &'a str {
    chain.find(marker).map_or(chain, |start| &chain[start..])
}

/// An error with its sources, `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error the way reqwest reports one: an outer error whose source is the
    /// `io::Error` holding `inner`.
    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "error sending request for url (https://127.0.0.1:5000/v2/)"
            )
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn wrapped(inner: rustls::Error) -> Outer {
        Outer(std::io::Error::other(inner))
    }

    #[test]
    fn classifies_rustls_failures() {
        let untrusted = wrapped(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert_eq!(classify(&untrusted), Some(TlsFailure::Untrusted));
        let msg = explain(
            &untrusted,
            "127.0.0.1:5000",
            &[PathBuf::from("/etc/vmrun/certs.d")],
        )
        .unwrap();
        assert!(msg.contains("not trusted"), "{msg}");
        assert!(
            msg.contains("/etc/vmrun/certs.d/127.0.0.1:5000/ca.crt"),
            "{msg}"
        );
        assert!(
            msg.contains("invalid peer certificate: UnknownIssuer"),
            "{msg}"
        );
        let wants_cert = wrapped(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        ));
        assert_eq!(classify(&wants_cert), Some(TlsFailure::ClientCertificate));
        let plain_http = wrapped(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(classify(&plain_http), Some(TlsFailure::NotTls));
        let eof = Outer(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "tls handshake eof",
        ));
        assert_eq!(classify(&eof), Some(TlsFailure::NotTls));
        let refused = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&refused), None);
        assert!(explain(&refused, "r", &[]).is_none());
    }

    #[test]
    fn unpaired_client_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let host_dir = dir.path().join("reg.example:5000");
        std::fs::create_dir_all(&host_dir).unwrap();
        std::fs::write(host_dir.join("client.cert"), "x").unwrap();
        let load_error = || {
            load(
                &[dir.path().to_owned()],
                "reg.example:5000",
                "reg.example:5000",
            )
            .err()
            .unwrap()
        };
        let err = load_error();
        assert!(err.to_string().contains("without its key"), "{err}");
        std::fs::remove_file(host_dir.join("client.cert")).unwrap();
        std::fs::write(host_dir.join("client.key"), "x").unwrap();
        let err = load_error();
        assert!(
            err.to_string().contains("without its client certificate"),
            "{err}"
        );
        std::fs::remove_file(host_dir.join("client.key")).unwrap();
        std::fs::write(host_dir.join("ca.crt"), "not pem").unwrap();
        let err = load_error();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        // Nothing for other hosts, nothing in missing dirs.
        let m = load(
            &[dir.path().to_owned(), dir.path().join("none")],
            "other:1",
            "other:1",
        )
        .unwrap();
        assert!(m.roots.is_empty() && m.identity.is_none());
    }
}
