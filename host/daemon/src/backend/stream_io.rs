//! Between blocking file work and async byte streams: a blocking writer whose bytes go
//! out as a [`ByteStream`], and a blocking reader over one.

use std::io::{self, Read, Write};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::ByteStream;

/// A blocking writer whose bytes go out as chunks of an async stream.
pub struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

/// Ends a [`ChannelWriter`]'s stream in an error (the client sees a failed transfer, not
/// a tar that looks complete).
pub struct StreamErrors(mpsc::Sender<io::Result<Bytes>>);

impl StreamErrors {
    /// Sends `e` as the stream's last item.
    pub fn fail(&self, e: io::Error) {
        let _ = self.0.blocking_send(Err(e));
    }
}

/// Chunks are sent when this much is buffered.
const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    /// A writer and the receiving end of its chunks.
    pub fn pair() -> (Self, mpsc::Receiver<io::Result<Bytes>>) {
        let (tx, rx) = mpsc::channel(8);
        let w = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        (w, rx)
    }

    /// Where an error ending the stream goes.
    pub fn errors(&self) -> StreamErrors {
        StreamErrors(self.tx.clone())
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The chunks `rx` receives as a [`ByteStream`].
pub fn stream_of(rx: mpsc::Receiver<io::Result<Bytes>>) -> ByteStream {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Reads an async byte stream from a blocking thread.
pub struct BlockingReader {
    stream: ByteStream,
    handle: tokio::runtime::Handle,
    chunk: Bytes,
}

impl BlockingReader {
    /// A reader of `stream`; made inside the runtime, read outside it.
    pub fn new(stream: ByteStream) -> Self {
        BlockingReader {
            stream,
            handle: tokio::runtime::Handle::current(),
            chunk: Bytes::new(),
        }
    }
}

impl Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}
