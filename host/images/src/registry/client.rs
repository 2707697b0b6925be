//! A blocking client for one repository on one registry (OCI distribution
//! spec): manifests and blobs, with anonymous, basic and bearer-token auth.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RANGE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};

use super::auth::{parse_challenge, Challenge, Credentials, TokenResponse};
use super::manifest::MANIFEST_ACCEPT;
use crate::digest::Digest;
use crate::error::{ImageError, IoContext};
use crate::reference::{Reference, DEFAULT_DOMAIN};

/// Where Docker Hub's registry API lives.
const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
/// Largest manifest or config accepted.
pub(crate) const MAX_METADATA_BYTES: u64 = 8 * 1024 * 1024;
/// Progress is reported at least every this many bytes.
const PROGRESS_STEP: u64 = 256 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for `reference`'s repository.
pub(crate) struct RegistryClient {
    http: Client,
    /// The registry as users name it (`docker.io`, `127.0.0.1:5000`), for messages.
    registry: String,
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000`.
    base: String,
    repository: String,
    credentials: Option<Credentials>,
    /// The `Authorization` header that last worked (or is to be tried).
    authorization: Mutex<Option<String>>,
}

impl RegistryClient {
    /// A client for the repository of `reference`. Plain HTTP is used for
    /// `localhost`, `127.0.0.0/8`, `::1` and registries listed in `insecure`.
    pub(crate) fn new(
        reference: &Reference,
        credentials: Option<Credentials>,
        insecure: &[String],
    ) -> Result<Self, ImageError> {
        let domain = reference.domain();
        let host = if domain == DEFAULT_DOMAIN {
            DOCKER_HUB_REGISTRY
        } else {
            domain
        };
        let scheme = if is_loopback(host) || insecure.iter().any(|i| i == domain || i == host) {
            "http"
        } else {
            "https"
        };
        let http = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(None)
            .user_agent(concat!("vmrun/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ImageError::Registry {
                registry: domain.to_owned(),
                message: format!("creating the HTTP client: {}", error_chain(&e)),
            })?;
        Ok(RegistryClient {
            http,
            registry: domain.to_owned(),
            base: format!("{scheme}://{host}"),
            repository: reference.path().to_owned(),
            credentials,
            authorization: Mutex::new(None),
        })
    }

    fn err(&self, message: impl Into<String>) -> ImageError {
        ImageError::Registry {
            registry: self.registry.clone(),
            message: message.into(),
        }
    }

    fn current_auth(&self) -> Option<String> {
        self.authorization
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends a request, answering one authentication challenge if the registry asks.
    fn send(&self, build: &dyn Fn() -> RequestBuilder) -> Result<Response, ImageError> {
        let attempt = |auth: Option<&str>| {
            let mut request = build();
            if let Some(a) = auth {
                request = request.header(AUTHORIZATION, a);
            }
            request
                .send()
                .map_err(|e| self.err(format!("request failed: {}", error_chain(&e))))
        };
        let before = self.current_auth();
        let response = attempt(before.as_deref())?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenges: Vec<Challenge> = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .filter_map(parse_challenge)
            .collect();
        let message = registry_message(response);
        let auth = self.answer(&challenges, &message)?;
        if before.as_deref() == Some(auth.as_str()) {
            return Err(self.unauthorized(&message));
        }
        *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(auth.clone());
        let response = attempt(Some(&auth))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let message = registry_message(response);
            return Err(self.unauthorized(&message));
        }
        Ok(response)
    }

    fn unauthorized(&self, message: &str) -> ImageError {
        let hint = if self.credentials.is_some() {
            "the registry refused the credentials"
        } else {
            "authentication required and no credentials were found"
        };
        ImageError::Unauthorized {
            registry: self.registry.clone(),
            message: format!("{hint}: {message}"),
        }
    }

    /// The `Authorization` header that answers `challenges` (bearer preferred).
    fn answer(&self, challenges: &[Challenge], message: &str) -> Result<String, ImageError> {
        for challenge in challenges {
            if let Challenge::Bearer {
                realm,
                service,
                scope,
            } = challenge
            {
                return self.fetch_token(realm, service.as_deref(), scope.as_deref());
            }
        }
        if challenges.contains(&Challenge::Basic) {
            if let Some(c) = &self.credentials {
                return Ok(c.basic_header());
            }
        }
        Err(self.unauthorized(message))
    }

    /// Gets a bearer token from `realm` (with basic credentials when we have some).
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String, ImageError> {
        let default_scope = format!("repository:{}:pull", self.repository);
        let mut query: Vec<(&str, &str)> = vec![("scope", scope.unwrap_or(&default_scope))];
        if let Some(s) = service {
            query.push(("service", s));
        }
        let mut request = self.http.get(realm).query(&query);
        if let Some(c) = &self.credentials {
            request = request.header(AUTHORIZATION, c.basic_header());
        }
        let response = request
            .send()
            .map_err(|e| self.err(format!("token request to {realm}: {}", error_chain(&e))))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let message = registry_message(response);
            return Err(self.unauthorized(&format!("token endpoint {realm}: {message}")));
        }
        if !status.is_success() {
            return Err(self.err(format!("token endpoint {realm} answered {status}")));
        }
        let bytes = read_limited(response, MAX_METADATA_BYTES)
            .map_err(|e| self.err(format!("reading the token from {realm}: {e}")))?;
        let token: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::json(format!("parsing the answer of {realm}"), e))?;
        token
            .into_token()
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(|| self.err(format!("token endpoint {realm} returned no token")))
    }

    /// `GET /v2/`: checks that the registry speaks the distribution API and
    /// accepts this client's credentials (answering a challenge if asked).
    pub(crate) fn check_api_base(&self) -> Result<(), ImageError> {
        let url = format!("{}/v2/", self.base);
        let response = self.send(&|| self.http.get(&url))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let message = registry_message(response);
        Err(self.err(format!("GET /v2/ answered {status}: {message}")))
    }

    fn url(&self, kind: &str, name: &str) -> String {
        format!("{}/v2/{}/{kind}/{name}", self.base, self.repository)
    }

    /// Fetches the manifest `tag_or_digest`: its bytes and `Content-Type`.
    /// 404 (unknown repository or manifest) is [`ImageError::NotFound`].
    pub(crate) fn manifest(
        &self,
        tag_or_digest: &str,
        what: &str,
    ) -> Result<(Vec<u8>, Option<String>), ImageError> {
        let url = self.url("manifests", tag_or_digest);
        let response = self.send(&|| self.http.get(&url).header(ACCEPT, MANIFEST_ACCEPT))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            let message = registry_message(response);
            return Err(ImageError::NotFound(format!(
                "manifest for {what} not found: {message}"
            )));
        }
        if !status.is_success() {
            let message = registry_message(response);
            return Err(self.err(format!("fetching manifest {what}: {status}: {message}")));
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_limited(response, MAX_METADATA_BYTES)
            .map_err(|e| self.err(format!("reading manifest {what}: {e}")))?;
        Ok((bytes, content_type))
    }

    /// Fetches a small blob (a config) whole, verified against `digest` and `size`.
    pub(crate) fn small_blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>, ImageError> {
        if size > MAX_METADATA_BYTES {
            return Err(self.err(format!("config blob {digest} of {size} bytes is too large")));
        }
        let url = self.url("blobs", &digest.to_string());
        let response = self.check_blob_status(self.send(&|| self.http.get(&url))?, digest)?;
        let bytes = read_limited(response, size + 1)
            .map_err(|e| self.err(format!("reading blob {digest}: {e}")))?;
        verify_bytes(&format!("blob {digest}"), &bytes, digest, size)?;
        Ok(bytes)
    }

    fn check_blob_status(
        &self,
        response: Response,
        digest: &Digest,
    ) -> Result<Response, ImageError> {
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            let message = registry_message(response);
            return Err(self.err(format!("blob {digest} not found: {message}")));
        }
        if !status.is_success() && status != StatusCode::RANGE_NOT_SATISFIABLE {
            let message = registry_message(response);
            return Err(self.err(format!("fetching blob {digest}: {status}: {message}")));
        }
        Ok(response)
    }

    /// Downloads a layer blob into `file`, resuming from what `file` already
    /// holds (a `Range` request) and verifying size and digest at the end.
    /// On a mismatch the file is emptied, so the next attempt starts over.
    pub(crate) fn download_blob(
        &self,
        digest: &Digest,
        size: u64,
        file: &mut File,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ImageError> {
        let what = format!("blob {digest}");
        let mut hasher = Sha256::new();
        let mut have = file.metadata().ctx(|| format!("inspecting {what}"))?.len();
        if have > size {
            file.set_len(0).ctx(|| format!("truncating {what}"))?;
            have = 0;
        }
        if have > 0 {
            file.seek(SeekFrom::Start(0))
                .ctx(|| format!("rewinding {what}"))?;
            let copied = std::io::copy(&mut file.take(have), &mut HashSink(&mut hasher))
                .ctx(|| format!("reading the partial {what}"))?;
            have = copied;
        }
        if have < size {
            let url = self.url("blobs", &digest.to_string());
            let range = format!("bytes={have}-");
            let response = self.check_blob_status(
                self.send(&|| {
                    let r = self.http.get(&url);
                    if have > 0 {
                        r.header(RANGE, &range)
                    } else {
                        r
                    }
                })?,
                digest,
            )?;
            let mut response = match response.status() {
                StatusCode::PARTIAL_CONTENT if have > 0 => {
                    tracing::info!(%digest, offset = have, "resuming a blob download");
                    response
                }
                StatusCode::OK | StatusCode::RANGE_NOT_SATISFIABLE => {
                    // The registry ignored the range (or refused it): start over.
                    drop(response);
                    file.set_len(0).ctx(|| format!("truncating {what}"))?;
                    hasher = Sha256::new();
                    have = 0;
                    let response = self.send(&|| self.http.get(&url))?;
                    self.check_blob_status(response, digest)?
                }
                status => return Err(self.err(format!("fetching {what}: unexpected {status}"))),
            };
            file.seek(SeekFrom::Start(have))
                .ctx(|| format!("seeking in {what}"))?;
            progress(have);
            let mut buf = vec![0u8; 64 * 1024];
            let mut reported = have;
            loop {
                if cancel.load(Ordering::Relaxed) {
                    return Err(self.err(format!("download of {what} cancelled")));
                }
                let n = response
                    .read(&mut buf)
                    .map_err(|e| self.err(format!("reading {what}: {e}")))?;
                if n == 0 {
                    break;
                }
                have += n as u64;
                if have > size {
                    file.set_len(0).ctx(|| format!("truncating {what}"))?;
                    return Err(ImageError::SizeMismatch {
                        what,
                        expected: size,
                        actual: have,
                    });
                }
                file.write_all(&buf[..n])
                    .ctx(|| format!("writing {what}"))?;
                hasher.update(&buf[..n]);
                if have - reported >= PROGRESS_STEP || have == size {
                    progress(have);
                    reported = have;
                }
            }
        }
        file.sync_all().ctx(|| format!("syncing {what}"))?;
        if have != size {
            // A short read: keep what we have for a resume.
            return Err(ImageError::SizeMismatch {
                what,
                expected: size,
                actual: have,
            });
        }
        let actual = Digest::from_hex(&hex::encode(hasher.finalize()))?;
        if actual != *digest {
            file.set_len(0).ctx(|| format!("truncating {what}"))?;
            return Err(ImageError::DigestMismatch {
                what: format!("{what} from {}/{}", self.registry, self.repository),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }
}

struct HashSink<'a>(&'a mut Sha256);

impl Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks downloaded bytes against the digest and size that name them.
pub(crate) fn verify_bytes(
    what: &str,
    bytes: &[u8],
    digest: &Digest,
    size: u64,
) -> Result<(), ImageError> {
    if bytes.len() as u64 != size {
        return Err(ImageError::SizeMismatch {
            what: what.to_owned(),
            expected: size,
            actual: bytes.len() as u64,
        });
    }
    let actual = Digest::of_bytes(bytes);
    if actual != *digest {
        return Err(ImageError::DigestMismatch {
            what: what.to_owned(),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// Whether `host` (with optional port) is `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Reads at most `limit` bytes of a body; more is an error.
fn read_limited(response: Response, limit: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    response
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(format!("more than {limit} bytes"));
    }
    Ok(bytes)
}

/// The registry's error message (`{"errors":[{"code":…,"message":…}]}`), or the status.
fn registry_message(response: Response) -> String {
    let status = response.status();
    let body = read_limited(response, 64 * 1024).unwrap_or_default();
    let parsed: Option<Vec<String>> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("errors").and_then(|e| e.as_array()).cloned())
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let message = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{}: {message}", code.to_ascii_lowercase().replace('_', " "))
                })
                .collect()
        });
    match parsed.filter(|p| !p.is_empty()) {
        Some(p) => p.join("; "),
        None => status.to_string(),
    }
}

/// An error with its sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry-1.docker.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn docker_hub_maps_to_its_registry_host() {
        let r = Reference::parse("busybox").unwrap();
        let c = RegistryClient::new(&r, None, &[]).unwrap();
        assert_eq!(c.base, "https://registry-1.docker.io");
        assert_eq!(
            c.url("manifests", "latest"),
            "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
        );
        let r = Reference::parse("myreg.example:5000/a/b:1").unwrap();
        let c = RegistryClient::new(&r, None, &["myreg.example:5000".into()]).unwrap();
        assert_eq!(c.base, "http://myreg.example:5000");
    }
}
