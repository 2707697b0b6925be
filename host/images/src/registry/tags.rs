//! [`list_tags`]: every tag of a repository (`GET /v2/<name>/tags/list`), for
//! `docker pull --all-tags`. Registries page the list: the next page is named
//! by a `Link: </v2/<name>/tags/list?n=…&last=…>; rel="next"` header.

use reqwest::header::LINK;
use reqwest::StatusCode;
use serde::Deserialize;

use super::client::{read_limited, registry_message, RegistryClient, MAX_METADATA_BYTES};
use super::PullOptions;
use crate::error::ImageError;
use crate::pull::pull_client;
use crate::reference::Reference;

/// Pages followed at most (a registry that links pages in a loop ends here).
const MAX_PAGES: usize = 1000;

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The tags of `repository`'s repository (`busybox`, `127.0.0.1:5000/x`; a tag
/// or digest in it is ignored), sorted, with the credentials and mirrors of
/// `opts` as for a pull.
///
/// Errors: [`ImageError::NotFound`] for an unknown repository,
/// [`ImageError::Unauthorized`] and [`ImageError::Registry`] as for a pull.
pub fn list_tags(repository: &str, opts: &PullOptions) -> Result<Vec<String>, ImageError> {
    let parsed = Reference::parse(repository)?;
    let client = pull_client(&parsed, opts)?;
    let mut tags = client.tags(&parsed.repository())?;
    tags.sort();
    tags.dedup();
    Ok(tags)
}

impl RegistryClient {
    /// Every tag, following `rel="next"` links; `what` names the repository in errors.
    fn tags(&self, what: &str) -> Result<Vec<String>, ImageError> {
        let mut tags = Vec::new();
        let mut url = self.url("tags", "list");
        for _ in 0..MAX_PAGES {
            let response = self.send(&|| self.http.get(&url))?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND {
                let message = registry_message(response);
                return Err(ImageError::NotFound(format!(
                    "repository {what} not found: {message}"
                )));
            }
            if !status.is_success() {
                let message = registry_message(response);
                return Err(self.err(format!("listing the tags of {what}: {status}: {message}")));
            }
            let next = response
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .map(|link| self.absolute(&link));
            let bytes = read_limited(response, MAX_METADATA_BYTES)
                .map_err(|e| self.err(format!("reading the tags of {what}: {e}")))?;
            let page: TagList = serde_json::from_slice(&bytes)
                .map_err(|e| self.err(format!("the tag list of {what} is not valid JSON: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) => url = n,
                None => return Ok(tags),
            }
        }
        Err(self.err(format!(
            "the tag list of {what} has more than {MAX_PAGES} pages"
        )))
    }

    /// `link` made absolute against the registry's base URL.
    pub(super) fn absolute(&self, link: &str) -> String {
        if link.starts_with("http://") || link.starts_with("https://") {
            link.to_owned()
        } else {
            format!("{}{link}", self.base)
        }
    }
}

/// The target of the `rel="next"` entry of a `Link` header.
pub(super) fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|entry| {
        let (target, params) = entry.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn finds_the_next_page_in_a_link_header() {
        assert_eq!(
            next_link("</v2/x/tags/list?last=b&n=2>; rel=\"next\"").as_deref(),
            Some("/v2/x/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link("<https://r/v2/x/tags/list?n=1>; rel=\"prev\", <https://r/v2/x/tags/list?last=z>; rel=\"next\"").as_deref(),
            Some("https://r/v2/x/tags/list?last=z")
        );
        assert_eq!(next_link("</v2/x/tags/list>; rel=\"prev\""), None);
        assert_eq!(next_link("garbage"), None);
    }
}
