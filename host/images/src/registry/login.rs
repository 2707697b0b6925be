//! Checking credentials against a registry, as `docker login` does: a
//! `GET /v2/` that must succeed with them (basic auth or a bearer token).

use super::auth::Credentials;
use super::client::RegistryClient;
use super::hosts::RegistryHosts;
use crate::error::ImageError;
use crate::reference::{Reference, DEFAULT_DOMAIN};

/// Names of Docker Hub that `docker login` accepts as its server.
const DOCKER_HUB_NAMES: &[&str] = &[
    "index.docker.io",
    "docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// The registry domain (`docker.io`, `127.0.0.1:5000`) that a `docker login`
/// server address names: `https://index.docker.io/v1/` → `docker.io`,
/// `http://127.0.0.1:5000/` → `127.0.0.1:5000`. An empty address is Docker Hub.
pub fn login_server_domain(server: &str) -> String {
    let trimmed = server.trim();
    let without_scheme = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or(trimmed);
    let host = without_scheme.split('/').next().unwrap_or("");
    if host.is_empty() || DOCKER_HUB_NAMES.contains(&host) {
        DEFAULT_DOMAIN.to_owned()
    } else {
        host.to_owned()
    }
}

/// Checks `credentials` against the registry at `server` (any form
/// [`login_server_domain`] accepts). Loopback registries and those listed in
/// `hosts.insecure` (`host:port`) are reached over plain HTTP.
///
/// Refused credentials are [`ImageError::Unauthorized`]; an unreachable or
/// misbehaving registry is [`ImageError::Registry`].
pub fn check_login(
    server: &str,
    credentials: &Credentials,
    hosts: &RegistryHosts,
) -> Result<(), ImageError> {
    let domain = login_server_domain(server);
    // The client works per repository; `GET /v2/` does not use the path, and
    // a bearer challenge without a scope gets a pull scope on this one.
    let reference = Reference::parse(&format!("{domain}/library/login-check"))?;
    let client = RegistryClient::new(&reference, Some(credentials.clone()), hosts)?;
    client.check_api_base()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_map_to_domains() {
        assert_eq!(
            login_server_domain("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(login_server_domain(""), "docker.io");
        assert_eq!(login_server_domain("docker.io"), "docker.io");
        assert_eq!(login_server_domain("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            login_server_domain("http://127.0.0.1:5000/v2/"),
            "127.0.0.1:5000"
        );
        assert_eq!(login_server_domain("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn unreachable_registry_is_a_registry_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let creds = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        let err = check_login(
            &format!("127.0.0.1:{port}"),
            &creds,
            &RegistryHosts::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ImageError::Registry { .. }), "{err}");
    }
}
