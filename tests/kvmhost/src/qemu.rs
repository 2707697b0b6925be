//! Running QEMU for the outer host and reading its serial console.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::job::{Job, Outcome, MARK};
use crate::outer::{KvmHost, RunError};

/// `-smp 2`: with one vCPU the nested run was seen to hang (shared/README.md).
const VCPUS: &str = "2";

/// What the outer init reported, read from marker lines.
#[derive(Default)]
struct Report {
    begun: Option<Duration>,
    exit_code: Option<i32>,
    files: BTreeMap<String, String>,
    output: String,
    done: bool,
    no_kvm: bool,
}

/// Collects base64 lines between markers.
enum Section {
    None,
    File(String),
    Output,
}

pub(crate) fn run_outer(host: &KvmHost, job: &Job, initrd: &Path) -> Result<Outcome, RunError> {
    let started = Instant::now();
    let mut child = Command::new(&host.qemu)
        .args([
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "EPYC,+svm,+npt",
            "-smp",
            VCPUS,
        ])
        .args(["-m", &job.memory_mib.to_string()])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(host.kernel.dir.join("vmlinuz"))
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1 rdinit=/init"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Setup(format!("starting {}: {e}", host.qemu.display())))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            if tx.send(text).is_err() {
                break;
            }
        }
    });

    let deadline = started + job.timeout;
    let mut serial = String::new();
    let mut report = Report::default();
    let mut section = Section::None;
    let mut finished = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                serial.push_str(&line);
                serial.push('\n');
                absorb(&line, &mut report, &mut section, started);
                if report.done || report.no_kvm {
                    finished = true;
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                return Err(RunError::Timeout {
                    after: job.timeout,
                    serial,
                });
            }
        }
    }
    // Done (QEMU powers off now; a few seconds' grace), or the serial pipe closed because
    // QEMU died.
    let grace = deadline.min(Instant::now() + Duration::from_secs(10));
    let status = wait_with_deadline(&mut child, grace);
    let _ = reader.join();
    let elapsed = started.elapsed();
    if report.no_kvm {
        return Err(RunError::NoKvm { serial });
    }
    match (finished, report.exit_code) {
        (true, Some(exit_code)) => Ok(Outcome {
            exit_code,
            output: decode(&report.output),
            files: report
                .files
                .iter()
                .map(|(k, v)| (k.clone(), decode_bytes(v)))
                .collect(),
            serial,
            elapsed,
            boot: report.begun.unwrap_or_default(),
        }),
        _ => {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
            }
            Err(RunError::Qemu {
                status: format!("{status}; stderr: {}", stderr.trim()),
                serial,
            })
        }
    }
}

fn wait_with_deadline(child: &mut std::process::Child, deadline: Instant) -> String {
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return s.to_string(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                return child
                    .wait()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|e| e.to_string());
            }
        }
    }
}

fn absorb(line: &str, report: &mut Report, section: &mut Section, started: Instant) {
    let Some(rest) = line.strip_prefix(MARK).map(str::trim) else {
        match section {
            Section::File(name) => {
                let entry = report.files.entry(name.clone()).or_default();
                entry.push_str(line.trim());
            }
            Section::Output => report.output.push_str(line.trim()),
            Section::None => {}
        }
        return;
    };
    *section = Section::None;
    let mut words = rest.splitn(2, ' ');
    match (words.next(), words.next()) {
        (Some("BEGIN"), _) => report.begun = Some(started.elapsed()),
        (Some("EXIT"), Some(code)) => report.exit_code = code.trim().parse().ok(),
        (Some("FILE"), Some(name)) => {
            report.files.insert(name.to_string(), String::new());
            *section = Section::File(name.to_string());
        }
        (Some("OUTPUT"), _) => *section = Section::Output,
        (Some("DONE"), _) => report.done = true,
        (Some("NOKVM"), _) => report.no_kvm = true,
        _ => {}
    }
}

fn decode(b64: &str) -> String {
    String::from_utf8_lossy(&decode_bytes(b64)).into_owned()
}

/// Standard base64 (busybox `base64` output); what is not base64 is skipped.
fn decode_bytes(b64: &str) -> Vec<u8> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(b64.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in b64.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_padding_and_line_breaks() {
        assert_eq!(decode("aGVsbG8gd29y\nbGQ="), "hello world");
        assert_eq!(decode("YQ=="), "a");
        assert_eq!(decode(""), "");
    }

    #[test]
    fn markers_fill_the_report() {
        let mut r = Report::default();
        let mut s = Section::None;
        let t = Instant::now();
        for l in [
            "[    1.0] some kernel line",
            "@@kvmhost@@ BEGIN",
            "job output",
            "@@kvmhost@@ EXIT 3",
            "@@kvmhost@@ FILE result.txt",
            "b2s=",
            "@@kvmhost@@ OUTPUT",
            "am9iIG91dHB1dAo=",
            "@@kvmhost@@ DONE",
        ] {
            absorb(l, &mut r, &mut s, t);
        }
        assert_eq!(r.exit_code, Some(3));
        assert!(r.done && r.begun.is_some());
        assert_eq!(decode(&r.output), "job output\n");
        assert_eq!(decode(&r.files["result.txt"]), "ok");
    }
}
