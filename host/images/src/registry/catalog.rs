//! [`catalog`]: the repositories a registry lists (`GET /v2/_catalog`), for
//! `docker search` against a registry. Registries page the list as they page tags
//! (`Link: </v2/_catalog?n=…&last=…>; rel="next"`); one without a catalog (Docker
//! Hub, most hosted registries) answers 401/404, reported as such.

use reqwest::header::LINK;
use reqwest::StatusCode;
use serde::Deserialize;

use super::client::{read_limited, registry_message, MAX_METADATA_BYTES};
use super::PullOptions;
use crate::error::ImageError;
use crate::pull::pull_client;
use crate::reference::Reference;

/// Pages followed at most.
const MAX_PAGES: usize = 100;

#[derive(Deserialize)]
struct Catalog {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

/// Every repository `registry` (`host[:port]`) lists, sorted, with the credentials,
/// TLS settings and insecure-registry rules of `opts` as for a pull.
///
/// Errors: [`ImageError::NotFound`] when the registry has no catalog,
/// [`ImageError::Unauthorized`] and [`ImageError::Registry`] as for a pull.
pub fn catalog(registry: &str, opts: &PullOptions) -> Result<Vec<String>, ImageError> {
    // A client for the registry; the repository only names it.
    let probe = Reference::parse(&format!("{registry}/catalog"))?;
    let client = pull_client(&probe, opts)?;
    let mut url = format!("{}/v2/_catalog?n=1000", client.base);
    let mut repositories = Vec::new();
    for _ in 0..MAX_PAGES {
        let response = client.send(&|| client.http.get(&url))?;
        let status = response.status();
        if matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ) {
            let message = registry_message(response);
            return Err(ImageError::NotFound(format!(
                "registry {registry} has no catalog to search: {status}: {message}"
            )));
        }
        if !status.is_success() {
            let message = registry_message(response);
            return Err(client.err(format!("listing the catalog: {status}: {message}")));
        }
        let next = response
            .headers()
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(super::tags::next_link)
            .map(|link| client.absolute(&link));
        let bytes = read_limited(response, MAX_METADATA_BYTES)
            .map_err(|e| client.err(format!("reading the catalog: {e}")))?;
        let page: Catalog = serde_json::from_slice(&bytes)
            .map_err(|e| client.err(format!("the catalog is not valid JSON: {e}")))?;
        repositories.extend(page.repositories.unwrap_or_default());
        match next {
            Some(n) => url = n,
            None => {
                repositories.sort();
                repositories.dedup();
                return Ok(repositories);
            }
        }
    }
    Err(client.err(format!("the catalog has more than {MAX_PAGES} pages")))
}
