//! The host side of hybrid vsock: Firecracker's handshake over a Unix socket, spoken by our
//! VMM's vsock device and by `vhost-device-vsock` alike.
//!
//! Connect to the VM's socket, write `CONNECT <port>\n`, read `OK <host port>\n`; from then on
//! the Unix stream is the guest's AF_VSOCK connection on `<port>`. When nothing listens on
//! the guest port (or the guest is still booting) the device closes the stream instead of
//! answering; [`connect`] retries that until its deadline.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest reply line accepted (`OK 4294967295\n` is 14 bytes).
const MAX_REPLY: usize = 32;
/// Pause between attempts while the guest is not listening yet.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Why a hybrid vsock connection failed.
#[derive(Debug, thiserror::Error)]
pub enum HybridVsockError {
    /// The device answered something that is not `OK <n>\n`: it is not a hybrid vsock socket
    /// (or a broken one); not retried.
    #[error("hybrid vsock {path}: port {port}: unexpected handshake reply {reply:?} (want \"OK <port>\")")]
    Garbage {
        path: PathBuf,
        port: u32,
        reply: String,
    },
    /// No connection before the deadline; `last` says what the last attempt saw (socket
    /// missing, refused by the guest, no reply).
    #[error("hybrid vsock {path}: no connection to guest port {port} within {timeout:?} (last attempt: {last})")]
    Timeout {
        path: PathBuf,
        port: u32,
        timeout: Duration,
        last: String,
    },
    /// The caller's liveness check said to give up (e.g. the VM stopped).
    #[error("hybrid vsock {path}: gave up connecting to guest port {port}: {reason}")]
    GaveUp {
        path: PathBuf,
        port: u32,
        reason: String,
    },
    /// Setting up the connected stream failed.
    #[error("hybrid vsock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One failed attempt: retry it (`Retry`) or report it (`Fatal`).
enum Attempt {
    Retry(String),
    Fatal(HybridVsockError),
}

/// Parses the device's reply line (without the newline): `OK <host port>`.
pub fn parse_ok_line(line: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(line).ok()?;
    let n = text.strip_prefix("OK ")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Connects to guest vsock `port` through the hybrid socket at `path`, retrying while the
/// socket is missing or the guest refuses (not listening yet) until `timeout` has passed.
/// Returns the connected stream (blocking, no timeouts set) and the device's host-side port.
pub fn connect(
    path: &Path,
    port: u32,
    timeout: Duration,
) -> Result<(UnixStream, u32), HybridVsockError> {
    connect_while(path, port, timeout, || Ok(()))
}

/// [`connect`], asking `keep_trying` before every attempt; an `Err(reason)` from it ends the
/// loop with [`HybridVsockError::GaveUp`] (backends use it to stop when the VM has exited).
pub fn connect_while(
    path: &Path,
    port: u32,
    timeout: Duration,
    mut keep_trying: impl FnMut() -> Result<(), String>,
) -> Result<(UnixStream, u32), HybridVsockError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Err(reason) = keep_trying() {
            return Err(HybridVsockError::GaveUp {
                path: path.to_owned(),
                port,
                reason,
            });
        }
        let last = match attempt(path, port, deadline) {
            Ok(done) => return Ok(done),
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(why)) => why,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(HybridVsockError::Timeout {
                path: path.to_owned(),
                port,
                timeout,
                last,
            });
        }
        std::thread::sleep(RETRY_PAUSE.min(deadline - now));
    }
}

fn attempt(path: &Path, port: u32, deadline: Instant) -> Result<(UnixStream, u32), Attempt> {
    let mut stream = UnixStream::connect(path)
        .map_err(|e| Attempt::Retry(format!("connecting to the socket: {e}")))?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let io = |source| {
        Attempt::Fatal(HybridVsockError::Io {
            path: path.to_owned(),
            source,
        })
    };
    stream.set_read_timeout(Some(left)).map_err(io)?;
    stream.set_write_timeout(Some(left)).map_err(io)?;
    if let Err(e) = stream.write_all(format!("CONNECT {port}\n").as_bytes()) {
        // The device may close before reading when the guest resets it.
        return Err(Attempt::Retry(format!("writing CONNECT: {e}")));
    }
    // Byte by byte: whatever follows the newline is the guest's data, not ours to consume.
    let mut line = Vec::with_capacity(MAX_REPLY);
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) if line.is_empty() => {
                return Err(Attempt::Retry(
                    "the guest refused (nothing listening on the port yet?)".into(),
                ))
            }
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => {
                line.push(byte[0]);
                if line.len() > MAX_REPLY {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(Attempt::Retry("no handshake reply".into()))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Err(Attempt::Retry(format!("reading the reply: {e}")))
            }
            Err(e) => return Err(io(e)),
        }
    }
    let Some(host_port) = parse_ok_line(&line) else {
        return Err(Attempt::Fatal(HybridVsockError::Garbage {
            path: path.to_owned(),
            port,
            reply: String::from_utf8_lossy(&line).into_owned(),
        }));
    };
    stream.set_read_timeout(None).map_err(io)?;
    stream.set_write_timeout(None).map_err(io)?;
    Ok((stream, host_port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;

    /// A fake device: answers the n-th connection with `replies[n]` (None: close at once)
    /// after checking the CONNECT line.
    fn fake_device(dir: &Path, replies: Vec<Option<&'static [u8]>>) -> PathBuf {
        let path = dir.join("hv.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for reply in replies {
                let (mut conn, _) = listener.accept().unwrap();
                let mut line = String::new();
                std::io::BufReader::new(&conn).read_line(&mut line).unwrap();
                assert_eq!(line, "CONNECT 1024\n");
                if let Some(reply) = reply {
                    conn.write_all(reply).unwrap();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        });
        path
    }

    #[test]
    fn retries_refusals_then_keeps_the_bytes_after_ok() {
        let dir = tempfile::tempdir().unwrap();
        let path = fake_device(dir.path(), vec![None, None, Some(b"OK 77\nguest data")]);
        let (mut stream, port) = connect(&path, 1024, Duration::from_secs(5)).unwrap();
        assert_eq!(port, 77);
        let mut data = [0u8; 10];
        stream.read_exact(&mut data).unwrap();
        assert_eq!(&data, b"guest data");
    }

    #[test]
    fn garbage_fails_at_once_naming_the_reply() {
        let dir = tempfile::tempdir().unwrap();
        let path = fake_device(dir.path(), vec![Some(b"HELLO\n")]);
        let started = Instant::now();
        let err = connect(&path, 1024, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, HybridVsockError::Garbage { .. }), "{err}");
        assert!(err.to_string().contains("HELLO"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
        let path2 = dir.path().join("long.sock");
        let listener = UnixListener::bind(&path2).unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let _ = conn.write_all(&[b'x'; 100]);
            std::thread::sleep(Duration::from_millis(200));
        });
        let err = connect(&path2, 1024, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, HybridVsockError::Garbage { .. }), "{err}");
    }

    #[test]
    fn times_out_with_what_the_last_attempt_saw() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sock");
        let err = connect(&missing, 1024, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, HybridVsockError::Timeout { .. }), "{err}");
        assert!(
            err.to_string().contains("connecting to the socket"),
            "{err}"
        );
        let refusing = fake_device(dir.path(), vec![None; 1000]);
        let err = connect(&refusing, 1024, Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        let err = connect_while(&missing, 1024, Duration::from_secs(5), || {
            Err("VM gone".into())
        })
        .unwrap_err();
        assert!(matches!(err, HybridVsockError::GaveUp { .. }), "{err}");
    }

    #[test]
    fn parses_ok_lines_and_rejects_the_rest() {
        assert_eq!(parse_ok_line(b"OK 1073741824"), Some(1073741824));
        assert_eq!(parse_ok_line(b"OK 0"), Some(0));
        for bad in [
            &b"OK"[..],
            b"OK ",
            b"ok 5",
            b"OK -1",
            b"OK 5 6",
            b"OK 99999999999",
            b"ERR 5",
            b"\xffOK 5",
        ] {
            assert_eq!(parse_ok_line(bad), None, "{bad:?}");
        }
    }
}
