//! The bytes of a [`crate::StreamTarget::Forward`] connection, shared by the host's port
//! forwarder and the agent.
//!
//! # TCP: chunks with an end marker
//! Each direction is a sequence of chunks, a `u32` big-endian length then that many bytes;
//! a chunk of length 0 says the sender's side was shut down for writing (a TCP half-close).
//! The connection ending without that marker means the peer's connection was reset or
//! failed; the other side then resets its own TCP connection (`SO_LINGER` 0) as a direct
//! connection would. The marker is in-band because a vsock half-close does not survive
//! every path to the guest: `vhost-device-vsock` (the QEMU backend) passes on only full
//! closes, so `shutdown(SHUT_WR)` on the host's Unix socket would be lost.
//!
//! # UDP: datagrams
//! A UDP flow (one host-side client) is one connection carrying datagrams, each a `u32`
//! big-endian length and the payload (empty datagrams are allowed). Either side closing
//! the connection ends the flow.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Length of a chunk or datagram header.
const HEADER: usize = 4;
/// Largest chunk sent, and the largest accepted (a UDP datagram is at most 65,535 bytes).
pub const MAX_CHUNK: usize = 64 * 1024;

/// How a relayed TCP connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Both directions were shut down in order.
    Closed,
    /// A side failed or was reset: reset the TCP connection this side holds.
    Reset,
}

/// Reads raw bytes from `raw` and sends them to `framed` as chunks; on end of input sends
/// the end marker. An error reading `raw` (a reset) is returned without the marker.
pub async fn send_chunks<R, W>(raw: &mut R, framed: &mut W) -> io::Result<()>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; HEADER + MAX_CHUNK];
    loop {
        let n = raw.read(&mut buf[HEADER..]).await?;
        // `n` ≤ MAX_CHUNK, which fits a u32.
        buf[..HEADER].copy_from_slice(&(n as u32).to_be_bytes());
        framed.write_all(&buf[..HEADER + n]).await?;
        if n == 0 {
            return framed.flush().await;
        }
    }
}

/// Reads chunks from `framed` and writes their bytes to `raw`; at the end marker shuts
/// `raw` down for writing. The connection ending without the marker is a
/// `ConnectionReset` error.
pub async fn receive_chunks<R, W>(framed: &mut R, raw: &mut W) -> io::Result<()>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; MAX_CHUNK];
    loop {
        let n = match read_len(framed).await? {
            Some(0) => break,
            Some(n) => n,
            None => return Err(io::ErrorKind::ConnectionReset.into()),
        };
        framed.read_exact(&mut buf[..n]).await?;
        raw.write_all(&buf[..n]).await?;
    }
    raw.shutdown().await
}

/// Relays between a TCP connection's halves (`raw_rd`, `raw_wr`) and a forward
/// connection's (`framed_rd`, `framed_wr`) until both directions have ended.
pub async fn relay<A, B, C, D>(
    raw_rd: &mut A,
    raw_wr: &mut B,
    framed_rd: &mut C,
    framed_wr: &mut D,
) -> Ending
where
    A: AsyncRead + Unpin + ?Sized,
    B: AsyncWrite + Unpin + ?Sized,
    C: AsyncRead + Unpin + ?Sized,
    D: AsyncWrite + Unpin + ?Sized,
{
    let outbound = send_chunks(raw_rd, framed_wr);
    let inbound = receive_chunks(framed_rd, raw_wr);
    tokio::pin!(outbound, inbound);
    // The first failure ends the relay at once: the caller resets its connection.
    let (mut out_done, mut in_done) = (false, false);
    while !(out_done && in_done) {
        tokio::select! {
            r = &mut outbound, if !out_done => match r {
                Ok(()) => out_done = true,
                Err(_) => return Ending::Reset,
            },
            r = &mut inbound, if !in_done => match r {
                Ok(()) => in_done = true,
                Err(_) => return Ending::Reset,
            },
        }
    }
    Ending::Closed
}

/// Sends one datagram.
pub async fn write_datagram<W>(w: &mut W, payload: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    if payload.len() > MAX_CHUNK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a datagram of {} bytes is too large", payload.len()),
        ));
    }
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    w.write_all(&frame).await?;
    w.flush().await
}

/// Reads one datagram into `buf` (at least [`MAX_CHUNK`] long); `None` at a clean end of
/// the connection. Not cancel-safe: read a flow's datagrams from one task.
pub async fn read_datagram<R>(r: &mut R, buf: &mut [u8]) -> io::Result<Option<usize>>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let Some(n) = read_len(r).await? else {
        return Ok(None);
    };
    let Some(dst) = buf.get_mut(..n) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a datagram of {n} bytes does not fit a buffer of {}",
                buf.len()
            ),
        ));
    };
    r.read_exact(dst).await?;
    Ok(Some(n))
}

/// A header's length; `None` when the connection ends before a header starts.
async fn read_len<R>(r: &mut R) -> io::Result<Option<usize>>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut header = [0u8; HEADER];
    let first = r.read(&mut header).await?;
    if first == 0 {
        return Ok(None);
    }
    r.read_exact(&mut header[first..]).await?;
    let n = u32::from_be_bytes(header) as usize;
    if n > MAX_CHUNK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a forwarded chunk of {n} bytes is larger than {MAX_CHUNK}"),
        ));
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_carry_bytes_and_the_half_close() {
        let (mut framed_a, mut framed_b) = tokio::io::duplex(1024);
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut source = &sent[..];
        let sender = async {
            send_chunks(&mut source, &mut framed_a).await.unwrap();
        };
        let mut received = Vec::new();
        let receiver = async {
            receive_chunks(&mut framed_b, &mut received).await.unwrap();
        };
        tokio::join!(sender, receiver);
        assert_eq!(received, sent);
    }

    #[tokio::test]
    async fn a_connection_ending_without_the_marker_is_a_reset() {
        let (mut framed_a, mut framed_b) = tokio::io::duplex(1024);
        framed_a.write_all(&3u32.to_be_bytes()).await.unwrap();
        framed_a.write_all(b"abc").await.unwrap();
        drop(framed_a);
        let mut received = Vec::new();
        let e = receive_chunks(&mut framed_b, &mut received)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(received, b"abc");
    }

    #[tokio::test]
    async fn oversized_chunks_are_refused() {
        let (mut framed_a, mut framed_b) = tokio::io::duplex(1024);
        framed_a
            .write_all(&(MAX_CHUNK as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        let mut sink = Vec::new();
        let e = receive_chunks(&mut framed_b, &mut sink).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn datagrams_keep_their_boundaries_including_empty_ones() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        for d in [&b"one"[..], b"", &[7u8; 65_507][..]] {
            write_datagram(&mut a, d).await.unwrap();
        }
        drop(a);
        let mut buf = vec![0u8; MAX_CHUNK];
        let mut got = Vec::new();
        while let Some(n) = read_datagram(&mut b, &mut buf).await.unwrap() {
            got.push(buf[..n].to_vec());
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], b"one");
        assert!(got[1].is_empty());
        assert_eq!(got[2].len(), 65_507);
    }

    #[tokio::test]
    async fn relay_ends_closed_after_both_half_closes() {
        // raw side: a duplex standing in for the TCP connection.
        let (mut tcp_peer, tcp_local) = tokio::io::duplex(4096);
        let (framed_local, mut framed_peer) = tokio::io::duplex(4096);
        let (mut raw_rd, mut raw_wr) = tokio::io::split(tcp_local);
        let (mut f_rd, mut f_wr) = tokio::io::split(framed_local);
        let relay =
            tokio::spawn(
                async move { relay(&mut raw_rd, &mut raw_wr, &mut f_rd, &mut f_wr).await },
            );
        tcp_peer.write_all(b"ping").await.unwrap();
        tcp_peer.shutdown().await.unwrap();
        let mut buf = [0u8; 64];
        // "ping" as a chunk, then the end marker.
        framed_peer.read_exact(&mut buf[..8]).await.unwrap();
        assert_eq!(&buf[4..8], b"ping");
        framed_peer.read_exact(&mut buf[..4]).await.unwrap();
        assert_eq!(&buf[..4], &[0, 0, 0, 0]);
        // The other way after the half-close, then its end.
        framed_peer.write_all(&4u32.to_be_bytes()).await.unwrap();
        framed_peer.write_all(b"pong").await.unwrap();
        framed_peer.write_all(&0u32.to_be_bytes()).await.unwrap();
        let mut reply = Vec::new();
        tcp_peer.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"pong");
        assert_eq!(relay.await.unwrap(), Ending::Closed);
    }
}
