//! Manifests as registries serve them: OCI index / Docker manifest list, OCI
//! image manifest / Docker schema2 manifest; and choosing a platform.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{ImageIndex, ImageManifest};

use crate::error::ImageError;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The `Accept` header of a manifest request.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A platform: `linux/amd64`, `linux/arm64/v8`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`, `arm`, ...
    pub architecture: String,
    /// e.g. `v8`, `v7`.
    pub variant: Option<String>,
}

impl Platform {
    /// Linux on the host's architecture (`linux/amd64` on x86-64, `linux/arm64` on aarch64).
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != architecture {
            return false;
        }
        match (&self.variant, variant) {
            (Some(want), Some(have)) => want == have,
            // arm64 images without a variant are v8.
            (Some(want), None) => self.architecture == "arm64" && want == "v8",
            (None, _) => true,
        }
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform::host()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || ImageError::Unsupported(format!("platform {s:?}: expected os/arch[/variant]"));
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_ascii_lowercase(),
                architecture: normalize_arch(arch),
                variant: None,
            }),
            [os, arch, variant] => Ok(Platform {
                os: os.to_ascii_lowercase(),
                architecture: normalize_arch(arch),
                variant: Some(variant.to_ascii_lowercase()),
            }),
            _ => Err(bad()),
        }
    }
}

fn normalize_arch(arch: &str) -> String {
    match arch.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        other => other.into(),
    }
}

/// A manifest as fetched.
pub(crate) enum Fetched {
    /// A list of per-platform manifests.
    Index(Box<ImageIndex>),
    /// One image.
    Manifest(Box<ImageManifest>),
}

/// Parses a manifest body by its media type (the body's `mediaType`, else the
/// `Content-Type` the registry sent).
pub(crate) fn parse(
    body: &[u8],
    content_type: Option<&str>,
    what: &str,
) -> Result<Fetched, ImageError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ImageError::json(format!("parsing {what}"), e))?;
    let media_type = value
        .get("mediaType")
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_owned()))
        .unwrap_or_default();
    let is_index = match media_type.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST_V2 => false,
        // OCI allows leaving mediaType out: tell by the content.
        _ if value.get("manifests").is_some() => true,
        _ if value.get("layers").is_some() && value.get("config").is_some() => false,
        other => {
            return Err(ImageError::Unsupported(format!(
            "{what}: manifest media type {other:?} (schema 1 and other formats are not supported)"
        )))
        }
    };
    if is_index {
        serde_json::from_value(value)
            .map(|i| Fetched::Index(Box::new(i)))
            .map_err(|e| ImageError::json(format!("parsing {what} as an image index"), e))
    } else {
        serde_json::from_value(value)
            .map(|m| Fetched::Manifest(Box::new(m)))
            .map_err(|e| ImageError::json(format!("parsing {what} as an image manifest"), e))
    }
}

/// The entry of `index` for `platform`: the first exact match, preferring one
/// whose variant matches when the platform names none.
pub(crate) fn choose<'a>(
    index: &'a ImageIndex,
    platform: &Platform,
    what: &str,
) -> Result<&'a oci_spec::image::Descriptor, ImageError> {
    let candidates: Vec<_> = index
        .manifests()
        .iter()
        .filter(|d| {
            d.platform().as_ref().is_some_and(|p| {
                platform.matches(
                    &p.os().to_string(),
                    &p.architecture().to_string(),
                    p.variant().as_deref(),
                )
            })
        })
        .collect();
    candidates.first().copied().ok_or_else(|| {
        let available: Vec<String> = index
            .manifests()
            .iter()
            .filter_map(|d| d.platform().as_ref())
            .map(|p| format!("{}/{}", p.os(), p.architecture()))
            .collect();
        ImageError::NotFound(format!(
            "{what}: no matching manifest for {platform} in the manifest list entries (available: {})",
            available.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_platforms() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(
            "Linux/x86_64".parse::<Platform>().unwrap(),
            Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None
            }
        );
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v7".parse::<Platform>().is_err());
        assert_eq!(p.to_string(), "linux/arm64/v8");
    }

    #[test]
    fn chooses_the_platform() {
        let index: ImageIndex = serde_json::from_str(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v7"}},
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":1,"platform":{"os":"linux","architecture":"arm64"}},
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}"#).unwrap();
        let d = |p: &str| choose(&index, &p.parse().unwrap(), "x").map(|d| d.digest().to_string());
        assert!(d("linux/amd64").unwrap().starts_with("sha256:ccc"));
        assert!(d("linux/arm64/v8").unwrap().starts_with("sha256:bbb"));
        assert!(d("linux/arm/v7").unwrap().starts_with("sha256:aaa"));
        assert!(matches!(d("windows/amd64"), Err(ImageError::NotFound(_))));
    }
}
