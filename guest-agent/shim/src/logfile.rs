//! Docker's json-file log format: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-01-01T00:00:00.000000001Z"}`.
//!
//! The writer splits output at newlines like docker does, and writes a line without a
//! newline when a partial line grows past [`MAX_PARTIAL`] or the stream ends.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::frame::Stream;

/// Longest partial line kept in memory before it is written as it is.
pub const MAX_PARTIAL: usize = 16 * 1024;

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The bytes written, as text (invalid UTF-8 is replaced).
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 time with nanoseconds.
    pub time: String,
}

impl LogRecord {
    /// Stdout or stderr; anything else reads as stdout.
    pub fn stream(&self) -> Stream {
        if self.stream == "stderr" {
            Stream::Stderr
        } else {
            Stream::Stdout
        }
    }
}

/// Appends a process's output to a json-file log.
pub struct LogWriter<W: Write> {
    out: W,
    partial: [Vec<u8>; 2],
}

impl<W: Write> LogWriter<W> {
    /// Wrap an appending writer.
    pub fn new(out: W) -> Self {
        LogWriter {
            out,
            partial: [Vec::new(), Vec::new()],
        }
    }

    fn slot(stream: Stream) -> usize {
        usize::from(stream == Stream::Stderr)
    }

    /// Record a chunk of output.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let slot = Self::slot(stream);
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(pos + 1);
            let mut buf = std::mem::take(&mut self.partial[slot]);
            buf.extend_from_slice(line);
            self.emit(stream, &buf)?;
            rest = tail;
        }
        self.partial[slot].extend_from_slice(rest);
        if self.partial[slot].len() >= MAX_PARTIAL {
            let buf = std::mem::take(&mut self.partial[slot]);
            self.emit(stream, &buf)?;
        }
        Ok(())
    }

    /// Write out partial lines (the process has ended) and flush.
    pub fn finish(&mut self) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let buf = std::mem::take(&mut self.partial[Self::slot(stream)]);
            if !buf.is_empty() {
                self.emit(stream, &buf)?;
            }
        }
        self.out.flush()
    }

    fn emit(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let rec = LogRecord {
            log: String::from_utf8_lossy(data).into_owned(),
            stream: stream.name().to_string(),
            time: crate::now_rfc3339(),
        };
        let mut line = serde_json::to_vec(&rec).map_err(io::Error::other)?;
        line.push(b'\n');
        self.out.write_all(&line)
    }
}

/// Read every well-formed record of a log; malformed lines (a torn last write) are skipped.
pub fn read_records<R: BufRead>(r: R) -> io::Result<Vec<LogRecord>> {
    let mut out = Vec::new();
    for line in r.lines() {
        let line = line?;
        if let Ok(rec) = serde_json::from_str::<LogRecord>(&line) {
            out.push(rec);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_partials() {
        let mut buf = Vec::new();
        {
            let mut w = LogWriter::new(&mut buf);
            w.write(Stream::Stdout, b"hel").unwrap();
            w.write(Stream::Stderr, b"err\n").unwrap();
            w.write(Stream::Stdout, b"lo\nworld").unwrap();
            w.finish().unwrap();
        }
        let recs = read_records(&buf[..]).unwrap();
        let got: Vec<_> = recs
            .iter()
            .map(|r| (r.stream.as_str(), r.log.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("stderr", "err\n"),
                ("stdout", "hello\n"),
                ("stdout", "world")
            ]
        );
        assert!(recs[0].time.ends_with('Z'));
    }

    #[test]
    fn long_partial_is_flushed() {
        let mut buf = Vec::new();
        let mut w = LogWriter::new(&mut buf);
        w.write(Stream::Stdout, &vec![b'x'; MAX_PARTIAL + 1])
            .unwrap();
        drop(w);
        assert_eq!(read_records(&buf[..]).unwrap().len(), 1);
    }

    #[test]
    fn torn_line_is_skipped() {
        let data = b"{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"t\"}\n{\"log\":\"b";
        let recs = read_records(&data[..]).unwrap();
        assert_eq!(recs.len(), 1);
    }
}
