//! Registry credentials and authentication challenges.
//!
//! Credentials come from a docker-style `config.json`
//! (`{"auths": {"<host>": {"auth": "<base64 user:password>"}}}`) or are given
//! directly. Challenges are the `WWW-Authenticate` headers of a 401 answer:
//! `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{ImageError, IoContext};

/// Hosts under which docker stores Docker Hub credentials.
const DOCKER_HUB_KEYS: &[&str] = &[
    "https://index.docker.io/v1/",
    "index.docker.io",
    "docker.io",
    "registry-1.docker.io",
];

/// A user name and password (or identity token as password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic …` header.
    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The credentials a registry operation uses: `given` ones (the Engine API's
/// `X-Registry-Auth`) win; else those `config` (a docker-style `config.json`)
/// holds for `registry`; else none.
pub(crate) fn choose_credentials(
    given: Option<&Credentials>,
    config: Option<&Path>,
    registry: &str,
) -> Result<Option<Credentials>, ImageError> {
    match (given, config) {
        (Some(c), _) => Ok(Some(c.clone())),
        (None, Some(path)) => credentials_from_config(path, registry),
        (None, None) => Ok(None),
    }
}

/// The credentials `config.json` at `path` holds for `registry` (the
/// reference's domain, e.g. `docker.io` or `127.0.0.1:5000`). A missing file
/// means no credentials; a malformed one is an error.
pub fn credentials_from_config(
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, ImageError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
    };
    let config: DockerConfig = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::json(format!("parsing {}", path.display()), e))?;
    let wanted: Vec<&str> = if registry == crate::reference::DEFAULT_DOMAIN {
        DOCKER_HUB_KEYS.to_vec()
    } else {
        vec![registry]
    };
    for (key, entry) in &config.auths {
        if !wanted.contains(&config_key_host(key)) && !wanted.contains(&key.as_str()) {
            continue;
        }
        if let Some(encoded) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| ImageError::Corrupt {
                    path: path.to_owned(),
                    reason: format!("auths.{key}.auth is not base64 of user:password"),
                })?;
            let (user, pass) = decoded.split_once(':').ok_or_else(|| ImageError::Corrupt {
                path: path.to_owned(),
                reason: format!("auths.{key}.auth has no ':' between user and password"),
            })?;
            return Ok(Some(Credentials {
                username: user.to_owned(),
                password: pass.to_owned(),
            }));
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }));
        }
    }
    Ok(None)
}

/// The credentials of a docker Engine API `X-Registry-Auth` header (base64url
/// JSON `{"username":…,"password":…}` or `{"identitytoken":…}`); `None` when
/// the header is empty, malformed or names no credentials.
pub fn credentials_from_registry_auth_header(value: &str) -> Option<Credentials> {
    #[derive(Deserialize)]
    struct Header {
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default, rename = "identitytoken")]
        identity_token: Option<String>,
    }
    let value = value.trim();
    let decoded = base64::engine::general_purpose::URL_SAFE
        .decode(value)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value.trim_end_matches('='))
        })
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(value))
        .ok()?;
    let header: Header = serde_json::from_slice(&decoded).ok()?;
    if let Some(token) = header.identity_token.filter(|t| !t.is_empty()) {
        return Some(Credentials {
            username: "<token>".into(),
            password: token,
        });
    }
    match (header.username, header.password) {
        (Some(u), Some(p)) if !u.is_empty() => Some(Credentials {
            username: u,
            password: p,
        }),
        _ => None,
    }
}

/// `https://host:port/v1/` → `host:port`.
fn config_key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// One authentication challenge from a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass on, if any.
        service: Option<String>,
        /// The `scope` parameter the registry asked for, if any.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value; `None` for schemes we do not speak.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(params);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `a="x",b=y, c="q\"z"` → map (keys lowercased).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    out
}

/// The body of a token endpoint's answer.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
}

impl TokenResponse {
    pub(crate) fn into_token(self) -> Option<String> {
        self.token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        let c = parse_challenge(r#"Bearer realm=http://127.0.0.1:1/t, service="a\"b""#).unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: Some("a\"b".into()),
                scope: None
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn reads_the_registry_auth_header() {
        // base64url of {"username":"bob","password":"pw?>"}
        let v = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"username":"bob","password":"pw?>","serveraddress":"x"}"#);
        let c = credentials_from_registry_auth_header(&v).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("bob", "pw?>"));
        assert!(credentials_from_registry_auth_header("e30=").is_none());
        assert!(credentials_from_registry_auth_header("").is_none());
    }

    #[test]
    fn reads_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwYTpzcw=="},
                "https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="}}}"#,
        )
        .unwrap();
        let c = credentials_from_config(&path, "127.0.0.1:5000")
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("user", "pa:ss")
        );
        let hub = credentials_from_config(&path, "docker.io")
            .unwrap()
            .unwrap();
        assert_eq!(hub.username, "hub");
        assert!(credentials_from_config(&path, "other:1").unwrap().is_none());
        assert!(credentials_from_config(&dir.path().join("missing"), "x")
            .unwrap()
            .is_none());
        assert!(!format!("{c:?}").contains("pa:ss"));
    }
}
