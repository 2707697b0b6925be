//! Docker's multiplexed stdio framing ("stdcopy"): an 8-byte header per chunk.
//!
//! Header: `[stream, 0, 0, 0, size as u32 big-endian]`, stream 0 = stdin, 1 = stdout,
//! 2 = stderr. Used on attach streams of processes without a terminal and by `logs`.

/// Which stdio stream a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stream {
    /// Standard input.
    Stdin = 0,
    /// Standard output.
    Stdout = 1,
    /// Standard error.
    Stderr = 2,
}

impl Stream {
    /// The name docker uses in json-file logs.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdin => "stdin",
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Length of a frame header.
pub const HEADER_LEN: usize = 8;

/// Append one framed chunk to `out`.
pub fn encode(stream: Stream, data: &[u8], out: &mut Vec<u8>) {
    // Chunks larger than u32::MAX are split; in practice reads are far smaller.
    for part in data.chunks(u32::MAX as usize) {
        out.push(stream as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
}

/// Parse a frame header: the stream and the payload length.
pub fn decode_header(h: &[u8; HEADER_LEN]) -> Option<(Stream, usize)> {
    let stream = match h[0] {
        0 => Stream::Stdin,
        1 => Stream::Stdout,
        2 => Stream::Stderr,
        _ => return None,
    };
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    Some((stream, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode(Stream::Stderr, b"oops\n", &mut buf);
        assert_eq!(&buf[..HEADER_LEN], &[2, 0, 0, 0, 0, 0, 0, 5]);
        let h: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().unwrap();
        assert_eq!(decode_header(&h), Some((Stream::Stderr, 5)));
        assert_eq!(&buf[HEADER_LEN..], b"oops\n");
    }

    #[test]
    fn bad_stream_byte() {
        assert_eq!(decode_header(&[7, 0, 0, 0, 0, 0, 0, 1]), None);
    }
}
