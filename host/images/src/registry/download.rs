//! Blob downloads of [`RegistryClient`]: small blobs (configs) whole, layer
//! blobs streamed to a file with resume (`Range`), every byte verified
//! against the digest and size that name it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::blocking::Response;
use reqwest::header::RANGE;
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};

use super::client::{read_limited, registry_message, RegistryClient, MAX_METADATA_BYTES};
use crate::digest::Digest;
use crate::error::{ImageError, IoContext};

/// Progress is reported at least every this many bytes.
const PROGRESS_STEP: u64 = 256 * 1024;

impl RegistryClient {
    /// Fetches a small blob (a config) whole, verified against `digest` and `size`.
    pub(crate) fn small_blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>, ImageError> {
        if size > MAX_METADATA_BYTES {
            return Err(self.err(format!("config blob {digest} of {size} bytes is too large")));
        }
        let url = self.url("blobs", &digest.to_string());
        let response = self.check_blob_status(self.send(&|| self.http.get(&url))?, digest)?;
        let bytes = read_limited(response, size + 1)
            .map_err(|e| self.err(format!("reading blob {digest}: {e}")))?;
        verify_bytes(&format!("blob {digest}"), &bytes, digest, size)?;
        Ok(bytes)
    }

    fn check_blob_status(
        &self,
        response: Response,
        digest: &Digest,
    ) -> Result<Response, ImageError> {
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            let message = registry_message(response);
            return Err(self.err(format!("blob {digest} not found: {message}")));
        }
        if !status.is_success() && status != StatusCode::RANGE_NOT_SATISFIABLE {
            let message = registry_message(response);
            return Err(self.err(format!("fetching blob {digest}: {status}: {message}")));
        }
        Ok(response)
    }

    /// Downloads a layer blob into `file`, resuming from what `file` already
    /// holds (a `Range` request) and verifying size and digest at the end.
    /// On a mismatch the file is emptied, so the next attempt starts over.
    pub(crate) fn download_blob(
        &self,
        digest: &Digest,
        size: u64,
        file: &mut File,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ImageError> {
        let what = format!("blob {digest}");
        let mut hasher = Sha256::new();
        let mut have = file.metadata().ctx(|| format!("inspecting {what}"))?.len();
        if have > size {
            file.set_len(0).ctx(|| format!("truncating {what}"))?;
            have = 0;
        }
        if have > 0 {
            file.seek(SeekFrom::Start(0))
                .ctx(|| format!("rewinding {what}"))?;
            let copied = std::io::copy(&mut file.take(have), &mut HashSink(&mut hasher))
                .ctx(|| format!("reading the partial {what}"))?;
            have = copied;
        }
        if have < size {
            let url = self.url("blobs", &digest.to_string());
            let range = format!("bytes={have}-");
            let response = self.check_blob_status(
                self.send(&|| {
                    let r = self.http.get(&url);
                    if have > 0 {
                        r.header(RANGE, &range)
                    } else {
                        r
                    }
                })?,
                digest,
            )?;
            let mut response = match response.status() {
                StatusCode::PARTIAL_CONTENT if have > 0 => {
                    tracing::info!(%digest, offset = have, "resuming a blob download");
                    response
                }
                StatusCode::OK | StatusCode::RANGE_NOT_SATISFIABLE => {
                    // The registry ignored the range (or refused it): start over.
                    drop(response);
                    file.set_len(0).ctx(|| format!("truncating {what}"))?;
                    hasher = Sha256::new();
                    have = 0;
                    let response = self.send(&|| self.http.get(&url))?;
                    self.check_blob_status(response, digest)?
                }
                status => return Err(self.err(format!("fetching {what}: unexpected {status}"))),
            };
            file.seek(SeekFrom::Start(have))
                .ctx(|| format!("seeking in {what}"))?;
            progress(have);
            let mut buf = vec![0u8; 64 * 1024];
            let mut reported = have;
            loop {
                if cancel.load(Ordering::Relaxed) {
                    return Err(self.err(format!("download of {what} cancelled")));
                }
                let n = response
                    .read(&mut buf)
                    .map_err(|e| self.err(format!("reading {what}: {e}")))?;
                if n == 0 {
                    break;
                }
                have += n as u64;
                if have > size {
                    file.set_len(0).ctx(|| format!("truncating {what}"))?;
                    return Err(ImageError::SizeMismatch {
                        what,
                        expected: size,
                        actual: have,
                    });
                }
                file.write_all(&buf[..n])
                    .ctx(|| format!("writing {what}"))?;
                hasher.update(&buf[..n]);
                if have - reported >= PROGRESS_STEP || have == size {
                    progress(have);
                    reported = have;
                }
            }
        }
        file.sync_all().ctx(|| format!("syncing {what}"))?;
        if have != size {
            // A short read: keep what we have for a resume.
            return Err(ImageError::SizeMismatch {
                what,
                expected: size,
                actual: have,
            });
        }
        let actual = Digest::from_hex(&hex::encode(hasher.finalize()))?;
        if actual != *digest {
            file.set_len(0).ctx(|| format!("truncating {what}"))?;
            return Err(ImageError::DigestMismatch {
                what: format!("{what} from {}/{}", self.registry, self.repository),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }
}

struct HashSink<'a>(&'a mut Sha256);

impl Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks downloaded bytes against the digest and size that name them.
pub(crate) fn verify_bytes(
    what: &str,
    bytes: &[u8],
    digest: &Digest,
    size: u64,
) -> Result<(), ImageError> {
    if bytes.len() as u64 != size {
        return Err(ImageError::SizeMismatch {
            what: what.to_owned(),
            expected: size,
            actual: bytes.len() as u64,
        });
    }
    let actual = Digest::of_bytes(bytes);
    if actual != *digest {
        return Err(ImageError::DigestMismatch {
            what: what.to_owned(),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}
