//! Following a json-file log that rotates ([`crate::logfile::LogFile`]): where a reader
//! is ([`LogCursor`]: a file by inode and an offset in it), and what was written since
//! ([`read_since`]), wherever the rotation moved the file the reader was in. One copy
//! for the daemon's `docker logs -f` and the guest agent's log stream to the host.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::logfile::rotated_path;

/// Where a reader of a rotating log is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCursor {
    /// The inode of the file the offset is in; 0 before the first read.
    pub ino: u64,
    /// The offset after what was read of that file.
    pub offset: u64,
}

/// The rotated files of the log at `path` (`<log>.1` …), oldest first.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..)
        .map(|n| rotated_path(path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files
}

/// Hands `read` what was written to the log at `path` since `cursor`, in order, as
/// `(file, offset)` to read from that offset to the file's end (advancing the offset
/// by what it read): the rest of the cursor's file if it was rotated away (now
/// `<log>.K`), every newer rotated file from its start, then the current file. A new
/// cursor (no file yet) starts at the oldest rotated file. A log emptied in place (one
/// file kept) is read from its start. Moves the cursor to the current file. Nothing
/// happens while `path` does not exist.
pub fn read_since(path: &Path, cursor: &mut LogCursor, mut read: impl FnMut(&Path, &mut u64)) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if cursor.ino == 0 {
        for rotated in rotated_files(path) {
            read(&rotated, &mut 0);
        }
        cursor.offset = 0;
    } else if meta.ino() != cursor.ino {
        // Rotated, maybe several times since the last read.
        let rotated = rotated_files(path);
        let at = rotated
            .iter()
            .position(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == cursor.ino));
        // Gone altogether (rotated past max-file): every rotated file left is newer.
        let newer_from = match at {
            Some(at) => {
                read(&rotated[at], &mut cursor.offset);
                at + 1
            }
            None => 0,
        };
        for newer in &rotated[newer_from..] {
            read(newer, &mut 0);
        }
        cursor.offset = 0;
    } else if meta.len() < cursor.offset {
        cursor.offset = 0;
    }
    cursor.ino = meta.ino();
    read(path, &mut cursor.offset);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logfile::{LogFile, Rotation};
    use std::io::{Read, Seek, SeekFrom, Write};

    /// Reads everything [`read_since`] hands out, as text.
    fn collect(path: &Path, cursor: &mut LogCursor) -> String {
        let mut out = String::new();
        read_since(path, cursor, |file, offset| {
            let mut f = std::fs::File::open(file).expect("open");
            f.seek(SeekFrom::Start(*offset)).expect("seek");
            let n = f.read_to_string(&mut out).expect("read");
            *offset += n as u64;
        });
        out
    }

    #[test]
    fn a_reader_gets_every_line_once_across_rotations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let rotation = Rotation {
            max_size: 10,
            max_files: 4,
        };
        let mut log = LogFile::open(&path, Some(rotation)).expect("open");
        let mut cursor = LogCursor::default();
        assert_eq!(collect(&path, &mut cursor), "");
        log.write_all(b"one\n").expect("write");
        assert_eq!(collect(&path, &mut cursor), "one\n");
        // Two rotations between reads: the rest of the old file, then the newer ones.
        for line in ["two\n", "three\n", "four-four\n", "five\n"] {
            log.write_all(line.as_bytes()).expect("write");
        }
        assert_eq!(collect(&path, &mut cursor), "two\nthree\nfour-four\nfive\n");
        assert_eq!(collect(&path, &mut cursor), "");
    }

    #[test]
    fn a_new_reader_starts_at_the_oldest_rotated_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let rotation = Rotation {
            max_size: 6,
            max_files: 3,
        };
        let mut log = LogFile::open(&path, Some(rotation)).expect("open");
        for line in ["one\n", "two\n", "three\n", "four\n"] {
            log.write_all(line.as_bytes()).expect("write");
        }
        // `one` went with the third file; the rest is read oldest first.
        let mut cursor = LogCursor::default();
        assert_eq!(collect(&path, &mut cursor), "two\nthree\nfour\n");
        log.write_all(b"five\n").expect("write");
        assert_eq!(collect(&path, &mut cursor), "five\n");
    }

    #[test]
    fn a_log_emptied_in_place_is_read_from_its_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let rotation = Rotation {
            max_size: 8,
            max_files: 1,
        };
        let mut log = LogFile::open(&path, Some(rotation)).expect("open");
        let mut cursor = LogCursor::default();
        log.write_all(b"abcdef\n").expect("write");
        assert_eq!(collect(&path, &mut cursor), "abcdef\n");
        log.write_all(b"xy\n").expect("write");
        assert_eq!(collect(&path, &mut cursor), "xy\n");
    }
}
