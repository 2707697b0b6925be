//! What a registry holds for a reference, without pulling it: the descriptor
//! of the manifest (or index) the reference names, and the platforms it
//! serves. This is the Engine API's `GET /distribution/{name}/json`.
//!
//! The platforms are the index entries' for an index, else the one in the
//! manifest's config blob (`os`, `architecture`, `variant`, `os.version`,
//! `os.features`), as dockerd reports them.

use serde::Deserialize;

use super::manifest::{self, Fetched, OCI_INDEX, OCI_MANIFEST};
use super::PullOptions;
use crate::digest::Digest;
use crate::error::ImageError;
use crate::pull::pull_client;
use crate::reference::Reference;

/// The registry's answer for one reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteDescriptor {
    /// The manifest's media type (an index's for a multi-platform image).
    pub media_type: String,
    /// `sha256:…` of the manifest bytes the registry served.
    pub digest: String,
    /// Size of those bytes.
    pub size: u64,
    /// The platforms the image is available for (empty when the config names none).
    pub platforms: Vec<RemotePlatform>,
}

/// One platform, with the OCI field names dockerd uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct RemotePlatform {
    /// GOARCH spelling: `amd64`, `arm64`.
    #[serde(default)]
    pub architecture: String,
    /// `linux`, `windows`.
    #[serde(default)]
    pub os: String,
    /// `os.version` (Windows builds).
    #[serde(default, rename = "os.version")]
    pub os_version: Option<String>,
    /// `os.features`.
    #[serde(default, rename = "os.features")]
    pub os_features: Vec<String>,
    /// `v7`, `v8`.
    #[serde(default)]
    pub variant: Option<String>,
}

/// Asks `reference`'s registry (or a Docker Hub mirror, as a pull would) for
/// its manifest, with the credentials of `opts` (given ones, else the config
/// file's); `opts.platform` is ignored. Nothing is stored.
///
/// Errors: [`ImageError::NotFound`] for an unknown repository or tag,
/// [`ImageError::DigestMismatch`] when a digest reference gets other bytes,
/// [`ImageError::Unauthorized`] and [`ImageError::Registry`] as for a pull.
pub fn resolve_descriptor(
    reference: &str,
    opts: &PullOptions,
) -> Result<RemoteDescriptor, ImageError> {
    let parsed = Reference::parse(reference)?.with_default_tag();
    let what = parsed.to_string();
    let client = pull_client(&parsed, opts)?;
    let target = parsed
        .digest()
        .or(parsed.tag())
        .unwrap_or(crate::reference::DEFAULT_TAG);
    let (bytes, content_type) = client.manifest(target, &what)?;
    let digest = Digest::of_bytes(&bytes);
    if let Some(expected) = parsed.digest() {
        if digest.to_string() != expected {
            return Err(ImageError::DigestMismatch {
                what: format!("manifest of {what}"),
                expected: expected.to_owned(),
                actual: digest.to_string(),
            });
        }
    }
    let fetched = manifest::parse(&bytes, content_type.as_deref(), &what)?;
    let media_type = media_type_of(&bytes, content_type.as_deref(), &fetched);
    let platforms = match &fetched {
        Fetched::Index(index) => index
            .manifests()
            .iter()
            .filter_map(|d| d.platform().as_ref())
            .map(|p| RemotePlatform {
                architecture: p.architecture().to_string(),
                os: p.os().to_string(),
                os_version: p.os_version().clone(),
                os_features: p.os_features().clone().unwrap_or_default(),
                variant: p.variant().clone(),
            })
            .collect(),
        Fetched::Manifest(m) => {
            let config_digest: Digest = m.config().digest().to_string().parse()?;
            let config = client.small_blob(&config_digest, m.config().size())?;
            platform_of_config(&config).into_iter().collect()
        }
    };
    Ok(RemoteDescriptor {
        media_type,
        digest: digest.to_string(),
        size: bytes.len() as u64,
        platforms,
    })
}

/// The media type the manifest declares, else the one the registry sent,
/// else the one its content shows.
fn media_type_of(body: &[u8], content_type: Option<&str>, fetched: &Fetched) -> String {
    #[derive(Deserialize)]
    struct Declared {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    let declared = serde_json::from_slice::<Declared>(body)
        .ok()
        .and_then(|d| d.media_type)
        .filter(|m| !m.is_empty());
    let sent = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
        .filter(|c| c.starts_with("application/vnd."));
    declared.or(sent).unwrap_or_else(|| {
        match fetched {
            Fetched::Index(_) => OCI_INDEX,
            Fetched::Manifest(_) => OCI_MANIFEST,
        }
        .to_owned()
    })
}

/// The platform an image config names, if it names one (dockerd leaves it
/// out when both `os` and `architecture` are empty).
fn platform_of_config(config: &[u8]) -> Option<RemotePlatform> {
    let platform: RemotePlatform = serde_json::from_slice(config).ok()?;
    (!platform.os.is_empty() || !platform.architecture.is_empty()).then_some(platform)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_platform_of_a_config() {
        let p = platform_of_config(
            br#"{"architecture":"arm","os":"linux","variant":"v7","os.features":["x"],"rootfs":{}}"#,
        )
        .unwrap();
        assert_eq!(p.architecture, "arm");
        assert_eq!(p.variant.as_deref(), Some("v7"));
        assert_eq!(p.os_features, vec!["x".to_owned()]);
        assert_eq!(platform_of_config(br#"{"rootfs":{}}"#), None);
        assert_eq!(platform_of_config(b"not json"), None);
    }

    #[test]
    fn media_type_prefers_the_declared_one() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        let fetched = manifest::parse(index, None, "x").unwrap();
        assert_eq!(media_type_of(index, None, &fetched), OCI_INDEX);
        assert_eq!(
            media_type_of(
                index,
                Some("application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"),
                &fetched
            ),
            manifest::DOCKER_MANIFEST_LIST
        );
        let declared = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert_eq!(
            media_type_of(declared, Some("application/json"), &fetched),
            OCI_INDEX
        );
    }
}
