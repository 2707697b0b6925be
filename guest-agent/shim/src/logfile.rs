//! Docker's json-file log format: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-01-01T00:00:00.000000001Z"}`.
//!
//! The writer splits output at newlines like docker does, and writes a line without a
//! newline when a partial line grows past [`MAX_PARTIAL`] or the stream ends.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

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
        // One `write` per record: a rotating [`LogFile`] never splits one.
        let n = self.out.write(&line)?;
        if n < line.len() {
            self.out.write_all(&line[n..])?;
        }
        Ok(())
    }
}

/// docker's `--log-opt max-size` / `max-file` for the json-file log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// Rotate before a record would take the file past this many bytes.
    pub max_size: u64,
    /// Files kept, the current one included (`<log>.1` is the newest rotated one); 1 keeps
    /// only the current file, emptied when full.
    pub max_files: u32,
}

/// The rotated file `n` of `log` (`<log>.n`).
pub fn rotated_path(log: &Path, n: u32) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// A json-file log that rotates as docker's does. Each `write` call is one record (a
/// whole line, as [`LogWriter`] writes them), so a record never spans two files.
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Option<Rotation>,
}

impl LogFile {
    /// Opens (appending to) `path`.
    pub fn open(path: &Path, rotation: Option<Rotation>) -> io::Result<LogFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_owned(),
            file,
            size,
            rotation,
        })
    }

    fn rotate(&mut self, rotation: Rotation) -> io::Result<()> {
        if rotation.max_files <= 1 {
            self.file.set_len(0)?;
        } else {
            let last = rotated_path(&self.path, rotation.max_files - 1);
            match std::fs::remove_file(&last) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            for n in (1..rotation.max_files - 1).rev() {
                match std::fs::rename(rotated_path(&self.path, n), rotated_path(&self.path, n + 1))
                {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, rotated_path(&self.path, 1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(r) = self.rotation {
            if self.size > 0 && self.size + buf.len() as u64 > r.max_size {
                self.rotate(r)?;
            }
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
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

    #[test]
    fn rotates_as_docker_does() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        let rotation = Rotation {
            max_size: 300,
            max_files: 3,
        };
        let mut w = LogWriter::new(LogFile::open(&log, Some(rotation)).unwrap());
        for i in 0..40 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        w.finish().unwrap();
        let read =
            |p: &Path| read_records(std::io::BufReader::new(File::open(p).unwrap())).unwrap();
        assert!(!rotated_path(&log, 3).exists());
        let mut all = Vec::new();
        for p in [rotated_path(&log, 2), rotated_path(&log, 1), log.clone()] {
            assert!(
                std::fs::metadata(&p).unwrap().len() <= 300,
                "{}",
                p.display()
            );
            all.extend(read(&p));
        }
        let numbers: Vec<usize> = all
            .iter()
            .map(|r| r.log.trim().trim_start_matches("line ").parse().unwrap())
            .collect();
        assert_eq!(numbers.last(), Some(&39));
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        let single = dir.path().join("one.log");
        let mut w = LogWriter::new(
            LogFile::open(
                &single,
                Some(Rotation {
                    max_size: 200,
                    max_files: 1,
                }),
            )
            .unwrap(),
        );
        for i in 0..20 {
            w.write(Stream::Stderr, format!("x{i}\n").as_bytes())
                .unwrap();
        }
        assert!(std::fs::metadata(&single).unwrap().len() <= 200);
        assert!(!rotated_path(&single, 1).exists());
    }
}
