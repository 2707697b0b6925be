//! Image references in docker's grammar, normalized to docker's familiar form.
//!
//! `reference := name [":" tag] ["@" digest]`, `name := [domain "/"] path`.
//! A first component is a domain when it contains `.` or `:`, or is `localhost`
//! (or has uppercase letters, as docker decides); otherwise the domain is
//! `docker.io`, and a one-component path on docker.io gets `library/`.

use std::fmt;

use crate::digest::is_lower_hex;
use crate::error::ImageError;

/// The default registry.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The repository namespace of official images on the default registry.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;

/// A parsed, fully qualified image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses a reference as the docker CLI does (`busybox`, `user/app:1`,
    /// `localhost:5000/x@sha256:…`). Does not add a default tag.
    pub fn parse(reference: &str) -> Result<Self, ImageError> {
        let invalid = |reason: &str| ImageError::InvalidReference {
            reference: reference.to_owned(),
            reason: reason.to_owned(),
        };
        if reference.is_empty() {
            return Err(invalid("empty reference"));
        }
        if reference.len() == 64 && is_lower_hex(reference) {
            return Err(invalid(
                "cannot specify 64-byte hexadecimal strings as a repository name",
            ));
        }
        let (name_tag, digest) = match reference.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (reference, None),
        };
        if let Some(d) = digest {
            validate_digest(d).map_err(|r| invalid(&r))?;
        }
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(|r| invalid(&r))?;
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid(
                "repository name must not be more than 255 characters",
            ));
        }
        let (domain, path) = split_domain(name);
        validate_domain(&domain).map_err(|r| invalid(&r))?;
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(&format!(
                "repository name ({path}) must be lowercase"
            )));
        }
        validate_path(&path).map_err(|r| invalid(&r))?;
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// The registry host (`docker.io`, `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path on the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The repository in familiar form (`busybox`, `user/app`, `localhost:5000/x`).
    pub fn repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.path.clone(),
            }
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The repository fully qualified (`docker.io/library/busybox`).
    pub fn full_repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Adds the default tag when the reference has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ImageError> {
        validate_tag(tag).map_err(|reason| ImageError::InvalidReference {
            reference: format!("{}:{tag}", self.repository()),
            reason,
        })?;
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        })
    }
}

impl fmt::Display for Reference {
    /// The familiar form: `busybox:latest`, `localhost:5000/x@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Normalizes a reference to docker's familiar form: `busybox` → `busybox:latest`,
/// `docker.io/library/busybox` → `busybox:latest`, `localhost:5000/x` →
/// `localhost:5000/x:latest`; digest references keep their digest (`repo@sha256:…`).
pub fn normalize_reference(r: &str) -> Result<String, ImageError> {
    Ok(Reference::parse(r)?.with_default_tag().to_string())
}

/// The registry a name starts with, as docker decides it (a first component holding a
/// `.` or `:`, `localhost`, or an upper-case letter), and the rest; `None` for a name
/// on Docker Hub. For partial names too (`docker search localhost:5000/bus`).
pub fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match split_registry(name) {
        (Some(domain), rest) => (domain.to_owned(), rest.to_owned()),
        (None, _) => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN.to_owned()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("invalid domain {domain:?}"))?;
        if v6.is_empty() || !v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(format!("invalid IPv6 address in domain {domain:?}"));
        }
        match after {
            "" => ("", None),
            p => (
                "",
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("invalid domain {domain:?}"))?,
                ),
            ),
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port in domain {domain:?}"));
        }
    }
    if !domain.starts_with('[') {
        for component in host.split('.') {
            let ok = !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !component.starts_with('-')
                && !component.ends_with('-');
            if !ok {
                return Err(format!("invalid domain {domain:?}"));
            }
        }
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), String> {
    for component in path.split('/') {
        if !is_path_component(component) {
            return Err(format!(
                "invalid repository path component {component:?} (allowed: [a-z0-9] separated by '.', '_', '__' or '-')"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+ (([._]|__|[-]+) [a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn validate_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= TAG_LENGTH_MAX
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tag {tag:?} (allowed: [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})"
        ))
    }
}

fn validate_digest(digest: &str) -> Result<(), String> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| format!("invalid digest {digest:?}"))?;
    let algo_ok = !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_+.".contains(&b));
    let hex_ok = match algorithm {
        "sha256" => hex.len() == 64 && is_lower_hex(hex),
        _ => hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
    };
    if algo_ok && hex_ok {
        Ok(())
    } else {
        Err(format!("invalid digest {digest:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_names() {
        let r = Reference::parse("docker.io/library/busybox:1.36").unwrap();
        assert_eq!(r.repository(), "busybox");
        assert_eq!(r.full_repository(), "docker.io/library/busybox");
        assert_eq!(r.tag(), Some("1.36"));
        let r = Reference::parse("index.docker.io/user/app").unwrap();
        assert_eq!(r.to_string(), "user/app");
        let r = Reference::parse("[::1]:5000/x:y").unwrap();
        assert_eq!(r.domain(), "[::1]:5000");
    }

    #[test]
    fn path_components() {
        assert!(is_path_component("a"));
        assert!(is_path_component("a.b_c__d---e"));
        assert!(!is_path_component("a..b"));
        assert!(!is_path_component("a___b"));
        assert!(!is_path_component("-a"));
        assert!(!is_path_component("a-"));
        assert!(!is_path_component(""));
    }
}
