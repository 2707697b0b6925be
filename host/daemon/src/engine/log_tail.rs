//! `docker logs --tail N`: the last records of a json-file log, read from its end in
//! blocks rather than the whole file from its start.

use std::io::{Read, Seek, SeekFrom};

use vmrun_shim::logfile::LogRecord;

/// How much is read per step back.
const BLOCK: u64 = 64 * 1024;

/// The last `n` records of `file` that `wanted` keeps, oldest first, and the offset just
/// after the last complete line (where following continues; a trailing partial line
/// is left for the follower to read once it is complete).
pub fn last_records(
    file: &mut std::fs::File,
    n: usize,
    wanted: impl Fn(&LogRecord) -> bool,
) -> std::io::Result<(Vec<LogRecord>, u64)> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut pos = len;
    // Bytes from `pos` to the end of the complete lines, not yet split into lines.
    let mut pending: Vec<u8> = Vec::new();
    let mut end: Option<u64> = None;
    let mut found: Vec<LogRecord> = Vec::new();
    while pos > 0 && found.len() < n {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&pending);
        pending = block;
        pos = start;
        if end.is_none() {
            // Drop a trailing partial line.
            let complete = pending
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            if complete == 0 && pos > 0 {
                continue;
            }
            end = Some(pos + complete as u64);
            pending.truncate(complete);
        }
        // Every line but the first is whole (the first may start before `pos`).
        let first_break = if pos == 0 {
            None
        } else {
            match pending.iter().position(|b| *b == b'\n') {
                Some(i) => Some(i),
                None => continue,
            }
        };
        let whole_from = first_break.map_or(0, |i| i + 1);
        let mut lines: Vec<&[u8]> = pending[whole_from..]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        lines.reverse();
        for line in lines {
            if found.len() >= n {
                break;
            }
            if let Ok(rec) = serde_json::from_slice::<LogRecord>(line) {
                if wanted(&rec) {
                    found.push(rec);
                }
            }
        }
        pending.truncate(whole_from);
    }
    found.reverse();
    Ok((found, end.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn record(i: usize, stream: &str) -> String {
        format!(
            "{{\"log\":\"line {i} {}\\n\",\"stream\":\"{stream}\",\"time\":\"2024-01-01T00:00:00.000000000Z\"}}\n",
            "x".repeat(i % 300)
        )
    }

    #[test]
    fn reads_the_last_lines_from_the_end() {
        let mut f = tempfile::tempfile().unwrap();
        for i in 0..5000 {
            f.write_all(record(i, if i % 3 == 0 { "stderr" } else { "stdout" }).as_bytes())
                .unwrap();
        }
        f.write_all(b"{\"log\":\"partial").unwrap();
        let full = f.seek(SeekFrom::End(0)).unwrap();
        let (recs, end) = last_records(&mut f, 3, |_| true).unwrap();
        let logs: Vec<&str> = recs
            .iter()
            .map(|r| r.log.split(' ').nth(1).unwrap())
            .collect();
        assert_eq!(logs, ["4997", "4998", "4999"]);
        assert_eq!(end, full - b"{\"log\":\"partial".len() as u64);
        let (recs, _) = last_records(&mut f, 2, |r| r.stream == "stderr").unwrap();
        let logs: Vec<&str> = recs
            .iter()
            .map(|r| r.log.split(' ').nth(1).unwrap())
            .collect();
        assert_eq!(logs, ["4995", "4998"]);
        let (all, _) = last_records(&mut f, 100_000, |_| true).unwrap();
        assert_eq!(all.len(), 5000);
        assert!(all[0].log.starts_with("line 0 "));
        let mut empty = tempfile::tempfile().unwrap();
        assert!(last_records(&mut empty, 5, |_| true).unwrap().0.is_empty());
    }
}
