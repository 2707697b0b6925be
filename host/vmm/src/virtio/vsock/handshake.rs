//! The hybrid-vsock handshake line a host client sends: `CONNECT <port>\n`, answered with
//! `OK <host port>\n` once the guest accepts (Firecracker's and vhost-device-vsock's protocol).

/// Longest handshake line accepted, newline included.
pub const MAX_LINE: usize = 64;

/// Result of looking at the bytes received so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// No newline yet and still within [`MAX_LINE`].
    Incomplete,
    /// A valid request for guest `port`; `consumed` bytes (through the newline) were used.
    Connect {
        /// Guest port.
        port: u32,
        /// Bytes of input the line used.
        consumed: usize,
    },
    /// Not a valid handshake; the connection is dropped.
    Invalid(&'static str),
}

/// Parses the start of a handshake stream.
pub fn parse(buf: &[u8]) -> Handshake {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_LINE {
            Handshake::Invalid("handshake line too long")
        } else {
            Handshake::Incomplete
        };
    };
    if nl + 1 > MAX_LINE {
        return Handshake::Invalid("handshake line too long");
    }
    let Ok(line) = std::str::from_utf8(&buf[..nl]) else {
        return Handshake::Invalid("handshake line is not UTF-8");
    };
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut words = line.split_ascii_whitespace();
    if words.next() != Some("CONNECT") {
        return Handshake::Invalid("expected CONNECT <port>");
    }
    let Some(port) = words.next().and_then(|p| p.parse::<u32>().ok()) else {
        return Handshake::Invalid("bad port number");
    };
    if words.next().is_some() {
        return Handshake::Invalid("trailing words after the port");
    }
    Handshake::Connect {
        port,
        consumed: nl + 1,
    }
}

/// The reply once the guest accepted.
pub fn ok_line(host_port: u32) -> String {
    format!("OK {host_port}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connect_lines() {
        assert_eq!(
            parse(b"CONNECT 1024\n"),
            Handshake::Connect {
                port: 1024,
                consumed: 13
            }
        );
        assert_eq!(
            parse(b"CONNECT 52\nhello"),
            Handshake::Connect {
                port: 52,
                consumed: 11
            }
        );
        assert_eq!(
            parse(b"CONNECT 7\r\n"),
            Handshake::Connect {
                port: 7,
                consumed: 11
            }
        );
        assert_eq!(parse(b"CONNECT 10"), Handshake::Incomplete);
        assert_eq!(parse(b""), Handshake::Incomplete);
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(parse(b"HELLO 1\n"), Handshake::Invalid(_)));
        assert!(matches!(parse(b"CONNECT\n"), Handshake::Invalid(_)));
        assert!(matches!(parse(b"CONNECT -1\n"), Handshake::Invalid(_)));
        assert!(matches!(
            parse(b"CONNECT 99999999999\n"),
            Handshake::Invalid(_)
        ));
        assert!(matches!(parse(b"CONNECT 1 2\n"), Handshake::Invalid(_)));
        assert!(matches!(parse(b"\xff\xfe\n"), Handshake::Invalid(_)));
        assert!(matches!(parse(&[b'A'; MAX_LINE]), Handshake::Invalid(_)));
        let mut long = b"CONNECT ".to_vec();
        long.extend(std::iter::repeat_n(b'0', 80));
        long.push(b'\n');
        assert!(matches!(parse(&long), Handshake::Invalid(_)));
    }

    /// A cheap stand-in for the cargo-fuzz target (which needs nightly): random and mutated
    /// inputs never panic and never consume past the line.
    #[test]
    fn random_input_never_panics() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if next() % 2 == 0 {
                let prefix = b"CONNECT 1234\n";
                let n = prefix.len().min(buf.len());
                buf[..n].copy_from_slice(&prefix[..n]);
            }
            if let Handshake::Connect { consumed, .. } = parse(&buf) {
                assert!(consumed <= buf.len() && consumed <= MAX_LINE);
                assert_eq!(buf[consumed - 1], b'\n');
            }
            let _ = super::super::packet::VsockHeader::parse(&buf);
        }
    }

    #[test]
    fn ok_line_format() {
        assert_eq!(ok_line(1073741824), "OK 1073741824\n");
    }
}
