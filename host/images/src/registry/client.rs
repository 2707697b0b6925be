//! A blocking client for one repository on one registry (OCI distribution
//! spec): manifests and blobs, with anonymous, basic and bearer-token auth.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use super::auth::{parse_challenge, Challenge, Credentials, TokenResponse};
use super::hosts::{is_loopback, RegistryHosts};
use super::manifest::MANIFEST_ACCEPT;
use super::mirrors::MirrorEndpoint;
use super::tls::{self, error_chain};
use crate::error::ImageError;
use crate::reference::{Reference, DEFAULT_DOMAIN};

/// Where Docker Hub's registry API lives.
const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
/// Largest manifest or config accepted.
pub(crate) const MAX_METADATA_BYTES: u64 = 8 * 1024 * 1024;
/// How long the HTTPS probe of a loopback or insecure registry may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// A client for `reference`'s repository.
pub(crate) struct RegistryClient {
    pub(super) http: Client,
    /// The registry as users name it (`docker.io`, `127.0.0.1:5000`), for messages.
    pub(super) registry: String,
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000`.
    pub(super) base: String,
    pub(super) repository: String,
    credentials: Option<Credentials>,
    /// The `Authorization` header that last worked (or is to be tried).
    authorization: Mutex<Option<String>>,
    /// `host[:port]` connected to (the registry, or the mirror), for TLS messages.
    connect_host: String,
    /// Where TLS material is looked up, for TLS messages.
    certs_dirs: Vec<PathBuf>,
}

impl RegistryClient {
    /// A client for the repository of `reference` on its own registry (Docker Hub for
    /// `docker.io`), reached as [`RegistryHosts`] says: HTTPS verified against the
    /// system roots and `certs.d`; for loopback and insecure registries HTTPS first
    /// (probed with `GET /v2/`) and plain HTTP when that fails.
    pub(crate) fn new(
        reference: &Reference,
        credentials: Option<Credentials>,
        hosts: &RegistryHosts,
    ) -> Result<Self, ImageError> {
        let domain = reference.domain();
        let host = if domain == DEFAULT_DOMAIN {
            DOCKER_HUB_REGISTRY
        } else {
            domain
        };
        let insecure = hosts.is_insecure(domain) || hosts.is_insecure(host);
        Self::connect(domain, host, None, insecure, reference, credentials, hosts)
    }

    /// A client for `reference`'s repository on `mirror` (anonymous until challenged:
    /// Docker Hub credentials are not sent to mirrors).
    pub(super) fn mirror(
        mirror: &MirrorEndpoint,
        reference: &Reference,
        hosts: &RegistryHosts,
    ) -> Result<Self, ImageError> {
        let insecure = hosts.is_insecure(&mirror.host);
        Self::connect(
            &mirror.host,
            &mirror.host,
            mirror.scheme,
            insecure,
            reference,
            None,
            hosts,
        )
    }

    /// A client for `reference`'s repository at `host`; `scheme` when fixed, else
    /// chosen as the module docs of [`super::hosts`] say.
    fn connect(
        registry: &str,
        host: &str,
        scheme: Option<&str>,
        insecure: bool,
        reference: &Reference,
        credentials: Option<Credentials>,
        hosts: &RegistryHosts,
    ) -> Result<Self, ImageError> {
        let material = tls::load(&hosts.certs_dirs, host, registry)?;
        let http = tls::http_client(material, insecure, registry)?;
        let mut client = RegistryClient {
            http,
            registry: registry.to_owned(),
            base: format!("https://{host}"),
            repository: reference.path().to_owned(),
            credentials,
            authorization: Mutex::new(None),
            connect_host: host.to_owned(),
            certs_dirs: hosts.certs_dirs.clone(),
        };
        let plain_allowed = insecure || is_loopback(host);
        match scheme {
            Some(s) => client.base = format!("{s}://{host}"),
            None if plain_allowed && !client.speaks_https(insecure) => {
                client.base = format!("http://{host}");
            }
            None => {}
        }
        tracing::debug!(registry, base = %client.base, "registry endpoint");
        Ok(client)
    }

    /// Whether the registry answers `GET /v2/` over HTTPS. An untrusted certificate
    /// counts as HTTPS (the request that follows explains it) unless `any_failure`.
    fn speaks_https(&self, any_failure: bool) -> bool {
        let url = format!("{}/v2/", self.base);
        match self.http.get(&url).timeout(PROBE_TIMEOUT).send() {
            Ok(_) => true,
            Err(e) => {
                let chain = error_chain(&e);
                tracing::debug!(registry = %self.registry, "HTTPS probe failed: {chain}");
                !any_failure
                    && matches!(
                        tls::classify(&e),
                        Some(tls::TlsFailure::Untrusted | tls::TlsFailure::ClientCertificate)
                    )
            }
        }
    }

    /// `HEAD` of the manifest `tag_or_digest`: Ok when the registry has it.
    pub(super) fn check_manifest(&self, tag_or_digest: &str) -> Result<(), ImageError> {
        let url = self.url("manifests", tag_or_digest);
        let response = self.send(&|| self.http.head(&url).header(ACCEPT, MANIFEST_ACCEPT))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(self.err(format!("manifest {tag_or_digest}: {status}")))
        }
    }

    /// A failed request as an error: TLS certificate problems explained, else the chain.
    fn transport_error(&self, what: &str, e: &reqwest::Error) -> ImageError {
        match tls::explain(e, &self.connect_host, &self.certs_dirs) {
            Some(message) => self.err(message),
            None => self.err(format!("{what}: {}", error_chain(e))),
        }
    }

    pub(super) fn err(&self, message: impl Into<String>) -> ImageError {
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
    pub(super) fn send(&self, build: &dyn Fn() -> RequestBuilder) -> Result<Response, ImageError> {
        let attempt = |auth: Option<&str>| {
            let mut request = build();
            if let Some(a) = auth {
                request = request.header(AUTHORIZATION, a);
            }
            request
                .send()
                .map_err(|e| self.transport_error("request failed", &e))
        };
        let before = self.current_auth();
        let response = attempt(before.as_deref())?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenges = challenges_of(&response);
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
            .map_err(|e| self.transport_error(&format!("token request to {realm}"), &e))?;
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

    pub(super) fn url(&self, kind: &str, name: &str) -> String {
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
}

/// What the upload protocol ([`super::upload`]) needs of the client.
impl RegistryClient {
    /// The HTTP client.
    pub(super) fn http_client(&self) -> &Client {
        &self.http
    }

    /// Sends a request, answering one authentication challenge (see `send`).
    pub(super) fn send_authorized(
        &self,
        build: &dyn Fn() -> RequestBuilder,
    ) -> Result<Response, ImageError> {
        self.send(build)
    }

    /// An [`ImageError::Registry`] naming this registry.
    pub(super) fn registry_error(&self, message: impl Into<String>) -> ImageError {
        self.err(message)
    }

    /// The registry as users name it (`127.0.0.1:5000`, `docker.io`).
    pub(super) fn registry_name(&self) -> &str {
        &self.registry
    }

    /// The repository path (`library/busybox`).
    pub(super) fn repository_path(&self) -> &str {
        &self.repository
    }

    /// `http://127.0.0.1:5000`.
    pub(super) fn base_url(&self) -> &str {
        &self.base
    }

    /// Authenticates up front for `scope` (`repository:a:pull,push repository:b:pull`):
    /// a bearer challenge on `GET /v2/` is answered with a token for exactly that
    /// scope (the registry's own challenges name only the scope of one request);
    /// a basic challenge with the credentials. A registry that asks nothing is fine.
    pub(crate) fn authorize_scope(&self, scope: &str) -> Result<(), ImageError> {
        let url = format!("{}/v2/", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .map_err(|e| self.transport_error("request failed", &e))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(());
        }
        let challenges = challenges_of(&response);
        let message = registry_message(response);
        let bearer = challenges.iter().find_map(|c| match c {
            Challenge::Bearer { realm, service, .. } => Some((realm, service)),
            _ => None,
        });
        let auth = match bearer {
            Some((realm, service)) => self.fetch_token(realm, service.as_deref(), Some(scope))?,
            None => self.answer(&challenges, &message)?,
        };
        *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(auth);
        Ok(())
    }
}

/// The `WWW-Authenticate` challenges of a 401 answer that we understand.
fn challenges_of(response: &Response) -> Vec<Challenge> {
    response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .filter_map(parse_challenge)
        .collect()
}

/// The registry's error message of a failed answer (for [`super::upload`]).
pub(super) fn response_message(response: Response) -> String {
    registry_message(response)
}

/// Reads at most `limit` bytes of a body; more is an error.
pub(super) fn read_limited(response: Response, limit: u64) -> Result<Vec<u8>, String> {
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
pub(super) fn registry_message(response: Response) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_maps_to_its_registry_host() {
        let r = Reference::parse("busybox").unwrap();
        let c = RegistryClient::new(&r, None, &RegistryHosts::default()).unwrap();
        assert_eq!(c.base, "https://registry-1.docker.io");
        assert_eq!(
            c.url("manifests", "latest"),
            "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
        );
        let r = Reference::parse("myreg.example:5000/a/b:1").unwrap();
        let c = RegistryClient::new(
            &r,
            None,
            &RegistryHosts {
                insecure: vec!["myreg.example:5000".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.base, "http://myreg.example:5000");
    }
}
