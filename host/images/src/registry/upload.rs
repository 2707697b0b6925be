//! Pushing to a registry (OCI distribution spec, "push"): blob existence
//! checks, cross-repository mounts, monolithic and chunked blob uploads, and
//! manifest uploads. [`crate::ImageStore::push`] drives them.
//!
//! ```text
//! HEAD  /v2/<repo>/blobs/<digest>                          200: already there
//! POST  /v2/<repo>/blobs/uploads/?mount=<digest>&from=<r>  201: mounted, 202: upload session
//! POST  /v2/<repo>/blobs/uploads/                          202 + Location: upload session
//! PUT   <location>?digest=<digest>   (body: the blob)      201: monolithic upload
//! PATCH <location>  Content-Range: <start>-<end>           202 + Location: one chunk
//! PUT   <location>?digest=<digest>   (empty body)          201: chunked upload done
//! PUT   /v2/<repo>/manifests/<tag>                         201: manifest stored
//! ```

use std::fs::File;
use std::io::Read;

use reqwest::blocking::Response;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;

use super::client::{response_message, RegistryClient};
use crate::digest::Digest;
use crate::error::{ImageError, IoContext};

/// The header in which registries name the digest of what they stored.
const CONTENT_DIGEST: &str = "Docker-Content-Digest";

/// What a mount request achieved.
pub(crate) enum Mount {
    /// The registry linked the blob from the other repository.
    Mounted,
    /// It could not; it opened an upload session at this location instead.
    Upload(String),
}

impl RegistryClient {
    /// Whether the repository already has the blob (`HEAD`).
    pub(crate) fn blob_exists(&self, digest: &Digest) -> Result<bool, ImageError> {
        let url = self.repo_url(&format!("blobs/{digest}"));
        let response = self.send_authorized(&|| self.http_client().head(&url))?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            status => Err(self.registry_error(format!(
                "checking for blob {digest} in {}: {status}",
                self.repository_path()
            ))),
        }
    }

    /// Asks the registry to link `digest` from the repository `from` (a path on
    /// this registry) instead of uploading it.
    pub(crate) fn mount_blob(&self, digest: &Digest, from: &str) -> Result<Mount, ImageError> {
        let url = self.repo_url("blobs/uploads/");
        let query = [("mount", digest.to_string()), ("from", from.to_owned())];
        let response = self.send_authorized(&|| self.http_client().post(&url).query(&query))?;
        match response.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Upload(self.location(&response, digest)?)),
            status => {
                let message = response_message(response);
                Err(self.registry_error(format!(
                    "mounting blob {digest} from {from} into {}: {status}: {message}",
                    self.repository_path()
                )))
            }
        }
    }

    /// `response` when the registry answered 202 Accepted; else an error
    /// saying what was being done (`doing`) to which repository, and why.
    fn expect_accepted(
        &self,
        response: Response,
        doing: impl FnOnce() -> String,
    ) -> Result<Response, ImageError> {
        if response.status() == StatusCode::ACCEPTED {
            return Ok(response);
        }
        let status = response.status();
        let message = response_message(response);
        Err(self.registry_error(format!(
            "{} to {}: {status}: {message}",
            doing(),
            self.repository_path()
        )))
    }

    /// Opens an upload session; returns its location.
    pub(crate) fn start_upload(&self, digest: &Digest) -> Result<String, ImageError> {
        let url = self.repo_url("blobs/uploads/");
        let response =
            self.send_authorized(&|| self.http_client().post(&url).header(CONTENT_LENGTH, "0"))?;
        let response =
            self.expect_accepted(response, || format!("starting the upload of blob {digest}"))?;
        self.location(&response, digest)
    }

    /// Uploads `size` bytes of `file` as the blob `digest` into the session at
    /// `location`: in one `PUT` when it fits in `chunk_size`, else in `PATCH`
    /// chunks of `chunk_size` and a closing `PUT`. `progress` hears the bytes
    /// sent after each request.
    pub(crate) fn upload_blob(
        &self,
        location: String,
        file: &mut File,
        digest: &Digest,
        size: u64,
        chunk_size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ImageError> {
        let chunk_size = chunk_size.max(1);
        let what = format!("blob {digest}");
        if size <= chunk_size {
            let body = read_chunk(file, size, &what)?;
            let url = with_digest(&location, digest);
            let response = self.send_authorized(&|| {
                self.http_client()
                    .put(&url)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body.clone())
            })?;
            self.check_stored(response, digest)?;
            progress(size);
            return Ok(());
        }
        let mut location = location;
        let mut sent = 0u64;
        while sent < size {
            let len = chunk_size.min(size - sent);
            let body = read_chunk(file, len, &what)?;
            let range = format!("{sent}-{}", sent + len - 1);
            let response = self.send_authorized(&|| {
                self.http_client()
                    .patch(&location)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header("Content-Range", &range)
                    .body(body.clone())
            })?;
            let response =
                self.expect_accepted(response, || format!("uploading bytes {range} of {what}"))?;
            location = self.location(&response, digest)?;
            sent += len;
            progress(sent);
        }
        let url = with_digest(&location, digest);
        let response = self.send_authorized(&|| {
            self.http_client()
                .put(&url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, "0")
        })?;
        self.check_stored(response, digest)
    }

    /// Uploads a small blob (a config) held in memory, unless it is there already.
    pub(crate) fn upload_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<(), ImageError> {
        if self.blob_exists(digest)? {
            return Ok(());
        }
        let location = self.start_upload(digest)?;
        let url = with_digest(&location, digest);
        let body = bytes.to_vec();
        let response = self.send_authorized(&|| {
            self.http_client()
                .put(&url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(body.clone())
        })?;
        self.check_stored(response, digest)
    }

    /// `PUT`s a manifest under `tag`; returns the digest the registry reports
    /// (checked against the bytes' own digest when it reports one).
    pub(crate) fn put_manifest(
        &self,
        tag: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, ImageError> {
        let digest = Digest::of_bytes(bytes);
        let url = self.repo_url(&format!("manifests/{tag}"));
        let body = bytes.to_vec();
        let response = self.send_authorized(&|| {
            self.http_client()
                .put(&url)
                .header(CONTENT_TYPE, media_type)
                .body(body.clone())
        })?;
        let status = response.status();
        if !status.is_success() {
            let message = response_message(response);
            return Err(self.registry_error(format!(
                "putting manifest {digest} as {}:{tag}: {status}: {message}",
                self.repository_path()
            )));
        }
        self.check_reported_digest(&response, &digest, "manifest")?;
        Ok(digest)
    }

    fn repo_url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base_url(), self.repository_path())
    }

    /// The session location of an upload answer, made absolute.
    fn location(&self, response: &Response, digest: &Digest) -> Result<String, ImageError> {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                self.registry_error(format!(
                    "the upload session for blob {digest} has no Location header"
                ))
            })?;
        if location.starts_with("http://") || location.starts_with("https://") {
            Ok(location.to_owned())
        } else if location.starts_with('/') {
            Ok(format!("{}{location}", self.base_url()))
        } else {
            Err(self.registry_error(format!(
                "the upload session for blob {digest} has an unusable Location {location:?}"
            )))
        }
    }

    /// Checks the answer to a blob upload's closing `PUT`.
    fn check_stored(&self, response: Response, digest: &Digest) -> Result<(), ImageError> {
        let status = response.status();
        if status != StatusCode::CREATED && !status.is_success() {
            let message = response_message(response);
            return Err(self.registry_error(format!(
                "uploading blob {digest} to {}: {status}: {message}",
                self.repository_path()
            )));
        }
        self.check_reported_digest(&response, digest, "blob")
    }

    fn check_reported_digest(
        &self,
        response: &Response,
        digest: &Digest,
        what: &str,
    ) -> Result<(), ImageError> {
        let reported = response
            .headers()
            .get(CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok());
        match reported {
            Some(r) if r != digest.to_string() => Err(ImageError::DigestMismatch {
                what: format!("{what} stored by {}", self.registry_name()),
                expected: digest.to_string(),
                actual: r.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// `location` with `digest=<digest>` added to its query.
fn with_digest(location: &str, digest: &Digest) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    // `sha256:<hex>` needs no escaping but the colon, which query values allow.
    format!("{location}{separator}digest={digest}")
}

/// Reads exactly `len` bytes of a blob file.
fn read_chunk(file: &mut File, len: u64, what: &str) -> Result<Vec<u8>, ImageError> {
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len)
        .read_to_end(&mut buf)
        .ctx(|| format!("reading {what} from the store"))?;
    if buf.len() as u64 != len {
        return Err(ImageError::SizeMismatch {
            what: format!("{what} in the store"),
            expected: len,
            actual: buf.len() as u64,
        });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_goes_into_the_query() {
        let d = Digest::of_bytes(b"x");
        assert_eq!(
            with_digest("http://r/v2/a/blobs/uploads/u1", &d),
            format!("http://r/v2/a/blobs/uploads/u1?digest={d}")
        );
        assert_eq!(
            with_digest("http://r/v2/a/blobs/uploads/u1?_state=abc", &d),
            format!("http://r/v2/a/blobs/uploads/u1?_state=abc&digest={d}")
        );
    }
}
