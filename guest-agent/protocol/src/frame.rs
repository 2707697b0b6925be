//! Length-delimited JSON frames: a `u32` big-endian body length, then that many bytes of
//! JSON. Bodies over [`MAX_FRAME_LEN`] are refused before they are read into memory.

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest frame body accepted or sent (1 MiB).
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// An oversized frame whose declared body is at most this long is read and thrown away, so
/// the connection stays usable; a longer declaration (garbage, most likely) ends it.
pub const MAX_SKIP_LEN: usize = 64 << 20;

/// Length of the frame header.
pub const HEADER_LEN: usize = 4;

/// Errors reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The body would exceed [`MAX_FRAME_LEN`]. When `skipped` is true the body was read and
    /// discarded and the next frame can be read; otherwise the stream is out of step.
    #[error("frame of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge {
        /// Declared body length.
        len: usize,
        /// The limit.
        max: usize,
        /// The body was consumed; the stream is still in step.
        skipped: bool,
    },
    /// The body is not the JSON expected (the stream is still in step).
    #[error("malformed frame: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// Reading or writing failed (including end of stream inside a frame).
    #[error("frame i/o: {0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// Whether the next frame can still be read after this error.
    pub fn recoverable(&self) -> bool {
        matches!(
            self,
            FrameError::Malformed(_) | FrameError::TooLarge { skipped: true, .. }
        )
    }
}

/// Serializes `msg` into a complete frame (header + body).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_LEN];
    serde_json::to_writer(&mut out, msg).map_err(FrameError::Malformed)?;
    let len = out.len() - HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
            skipped: false,
        });
    }
    out[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Parses a body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(body).map_err(FrameError::Malformed)
}

/// Checks a header; `Err` carries whether the body should be skipped.
fn check_len(header: [u8; HEADER_LEN]) -> Result<usize, (usize, bool)> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        Err((len, len <= MAX_SKIP_LEN))
    } else {
        Ok(len)
    }
}

fn too_large(len: usize, skipped: bool) -> FrameError {
    FrameError::TooLarge {
        len,
        max: MAX_FRAME_LEN,
        skipped,
    }
}

/// Reads one frame body (blocking). End of stream before a header is [`FrameError::Closed`].
pub fn read_body(r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    match check_len(header) {
        Ok(len) => {
            let mut body = vec![0u8; len];
            r.read_exact(&mut body)?;
            Ok(body)
        }
        Err((len, skip)) => {
            if skip {
                let copied = io::copy(&mut Read::take(&mut *r, len as u64), &mut io::sink())?;
                if copied < len as u64 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                }
            }
            Err(too_large(len, skip))
        }
    }
}

/// Reads and parses one frame (blocking).
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, FrameError> {
    decode(&read_body(r)?)
}

/// Writes one frame (blocking).
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// The same over tokio's async I/O traits (feature `tokio`).
#[cfg(feature = "tokio")]
pub mod nonblocking {
    use super::*;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// Reads one frame body. End of stream before a header is [`FrameError::Closed`].
    pub async fn read_body<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, FrameError> {
        let mut header = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match r.read(&mut header[got..]).await? {
                0 if got == 0 => return Err(FrameError::Closed),
                0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                n => got += n,
            }
        }
        match check_len(header) {
            Ok(len) => {
                let mut body = vec![0u8; len];
                r.read_exact(&mut body).await?;
                Ok(body)
            }
            Err((len, skip)) => {
                if skip {
                    let copied = tokio::io::copy(
                        &mut AsyncReadExt::take(&mut *r, len as u64),
                        &mut tokio::io::sink(),
                    )
                    .await?;
                    if copied < len as u64 {
                        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                    }
                }
                Err(too_large(len, skip))
            }
        }
    }

    /// Reads and parses one frame.
    pub async fn read_frame<T: DeserializeOwned, R: AsyncRead + Unpin>(
        r: &mut R,
    ) -> Result<T, FrameError> {
        decode(&read_body(r).await?)
    }

    /// Writes one frame.
    pub async fn write_frame<T: Serialize, W: AsyncWrite + Unpin>(
        w: &mut W,
        msg: &T,
    ) -> Result<(), FrameError> {
        w.write_all(&encode(msg)?).await?;
        w.flush().await?;
        Ok(())
    }
}
