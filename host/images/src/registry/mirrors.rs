//! Docker Hub mirrors (`--registry-mirror`): which endpoints stand in for
//! `registry-1.docker.io` when pulling a `docker.io` reference.
//!
//! Mirrors are tried in order; one that cannot be reached, answers an error or does
//! not hold the manifest is skipped with a warning and the next is tried, then Docker
//! Hub itself. A mirror authenticates with its own challenge; Docker Hub credentials
//! are not sent to mirrors. Once a mirror has the manifest, the whole pull uses it.

use super::auth::Credentials;
use super::client::RegistryClient;
use super::hosts::RegistryHosts;
use crate::error::ImageError;
use crate::reference::{Reference, DEFAULT_DOMAIN};

impl RegistryClient {
    /// Like [`RegistryClient::new`], but for a pull: a `docker.io` reference is served by
    /// the first mirror in `hosts.mirrors` that holds its manifest (mirrors that fail
    /// are skipped with a warning), then by Docker Hub.
    pub(crate) fn for_pull(
        reference: &Reference,
        credentials: Option<Credentials>,
        hosts: &RegistryHosts,
    ) -> Result<Self, ImageError> {
        if reference.domain() == DEFAULT_DOMAIN {
            let target = reference
                .digest()
                .or(reference.tag())
                .unwrap_or(crate::reference::DEFAULT_TAG);
            for mirror in parse_all(&hosts.mirrors) {
                match Self::mirror(&mirror, reference, hosts)
                    .and_then(|c| c.check_manifest(target).map(|()| c))
                {
                    Ok(client) => {
                        tracing::info!(mirror = %mirror.host, %reference, "pulling from a mirror");
                        return Ok(client);
                    }
                    Err(e) => {
                        tracing::warn!(mirror = %mirror.host, %reference, "skipping mirror: {e}")
                    }
                }
            }
        }
        Self::new(reference, credentials, hosts)
    }
}

/// A mirror as configured: `https://mirror.example`, `http://10.0.0.1:5000/`, `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MirrorEndpoint {
    /// `http` or `https` when given; `None`: chosen as for any registry.
    pub scheme: Option<&'static str>,
    /// `host[:port]`.
    pub host: String,
}

impl MirrorEndpoint {
    /// Parses one mirror; the message names the bad entry.
    pub(crate) fn parse(mirror: &str) -> Result<MirrorEndpoint, String> {
        let trimmed = mirror.trim();
        let (scheme, rest) = if let Some(rest) = trimmed.strip_prefix("https://") {
            (Some("https"), rest)
        } else if let Some(rest) = trimmed.strip_prefix("http://") {
            (Some("http"), rest)
        } else if trimmed.contains("://") {
            return Err(format!(
                "registry mirror {mirror:?}: only http:// and https:// are supported"
            ));
        } else {
            (None, trimmed)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err(format!("registry mirror {mirror:?}: no host"));
        }
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(format!(
                "registry mirror {mirror:?}: a mirror is a host[:port], without a path"
            ));
        }
        if rest.chars().any(|c| c.is_whitespace() || c == '@') {
            return Err(format!("registry mirror {mirror:?}: invalid host {rest:?}"));
        }
        Ok(MirrorEndpoint {
            scheme,
            host: rest.to_owned(),
        })
    }

    /// `https://host[:port]` (as `docker info` lists mirrors), `host` alone without a scheme.
    pub(crate) fn display(&self) -> String {
        match self.scheme {
            Some(s) => format!("{s}://{}/", self.host),
            None => format!("{}/", self.host),
        }
    }
}

/// The mirrors of `mirrors` that parse, warning about (and skipping) the others.
pub(crate) fn parse_all(mirrors: &[String]) -> Vec<MirrorEndpoint> {
    mirrors
        .iter()
        .filter_map(|m| match MirrorEndpoint::parse(m) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!("skipping {e}");
                None
            }
        })
        .collect()
}

/// The mirrors as `docker info` shows them (`RegistryConfig.Mirrors`): `https://host/`.
pub fn mirror_urls(mirrors: &[String]) -> Vec<String> {
    parse_all(mirrors)
        .iter()
        .map(|m| match m.scheme {
            Some(_) => m.display(),
            None => format!("https://{}/", m.host),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mirror_forms() {
        assert_eq!(
            MirrorEndpoint::parse("https://mirror.gcr.io").unwrap(),
            MirrorEndpoint {
                scheme: Some("https"),
                host: "mirror.gcr.io".into()
            }
        );
        assert_eq!(
            MirrorEndpoint::parse("http://127.0.0.1:5000/").unwrap(),
            MirrorEndpoint {
                scheme: Some("http"),
                host: "127.0.0.1:5000".into()
            }
        );
        assert_eq!(
            MirrorEndpoint::parse("10.0.0.1:5000").unwrap(),
            MirrorEndpoint {
                scheme: None,
                host: "10.0.0.1:5000".into()
            }
        );
        for bad in ["ftp://x", "https://x/path", "https://", "a b"] {
            let err = MirrorEndpoint::parse(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
        assert_eq!(
            mirror_urls(&[
                "m.example:5000".into(),
                "http://a/".into(),
                "ftp://b".into()
            ]),
            vec!["https://m.example:5000/", "http://a/"]
        );
    }
}
