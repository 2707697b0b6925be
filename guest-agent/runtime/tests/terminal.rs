//! Terminals like runc's `--console-socket`: the pty comes from the
//! container's own devpts, so the process sees `/dev/pts/N`, `/dev/console`
//! is that pts, and window sizes set on the master reach it.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use common::{can_run, output_file, spec, wait, Bundle};
use serde_json::json;
use vmrun_runtime::Stdio;

/// Everything the master reads until the slave side is gone (EIO), `\r\n` as `\n`.
fn read_all(master: OwnedFd) -> String {
    let mut master = File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

fn set_window_size(master: &OwnedFd, rows: u16, cols: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize through the pointer, which lives across the call.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
}

#[test]
fn terminal_is_a_pts_of_the_container() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    let rt = b.runtime();
    let id = "tty";
    let script = "tty; stty size; [ -t 0 ] && [ -t 1 ] && echo is-a-tty; \
                  stat -c '%F %t:%T' /dev/console \"$(tty)\"";
    let s = spec(id, &["sh", "-c", script], |v| {
        v["process"]["terminal"] = json!(true);
    });
    // create, size the window, then start: no race with `stty size`.
    let mut c = rt.create(id, b.path(), &s, Stdio::Terminal).unwrap();
    let master = c.console.take().expect("console master");
    set_window_size(&master, 33, 111);
    rt.start(&mut c).unwrap();
    let out = read_all(master);
    assert_eq!(wait(c.pid), 0, "{out}");
    rt.delete(id, false).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[0].starts_with("/dev/pts/"), "{out}");
    assert_eq!(lines[1], "33 111", "{out}");
    assert_eq!(lines[2], "is-a-tty", "{out}");
    // /dev/console is the same character device as the process's pts.
    assert!(lines[3].starts_with("character special file "), "{out}");
    assert_eq!(lines[3], lines[4], "{out}");
}

#[test]
fn run_with_terminal_gives_the_master() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    let rt = b.runtime();
    let id = "tty-run";
    let s = spec(id, &["sh", "-c", "tty; echo done"], |v| {
        v["process"]["terminal"] = json!(true);
    });
    let c = rt.run(id, b.path(), &s, Stdio::Terminal).unwrap();
    let out = read_all(c.console.expect("console master"));
    assert_eq!(wait(c.pid), 0, "{out}");
    rt.delete(id, false).unwrap();
    assert_eq!(out, "/dev/pts/0\ndone\n");
}

#[test]
fn exec_with_terminal_gets_a_pts() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    let rt = b.runtime();
    let id = "exec-tty";
    let s = spec(id, &["sleep", "30"], |_| {});
    let (_file, stdio) = output_file();
    let mut c = rt.create(id, b.path(), &s, stdio).unwrap();
    rt.start(&mut c).unwrap();

    let mut process = s.process().clone().unwrap();
    process.set_terminal(Some(true));
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        // Waits for a line, so the window size is set before stty runs.
        "tty; [ -t 0 ] && echo is-a-tty; read go; stty size".into(),
    ]));
    let exec = rt.exec(id, &process, Stdio::Terminal).unwrap();
    let master = exec.console.expect("exec console master");
    set_window_size(&master, 40, 100);
    File::from(master.try_clone().unwrap())
        .write_all(b"go\n")
        .unwrap();
    let out = read_all(master);
    assert_eq!(wait(exec.pid), 0, "{out}");
    // The terminal echoes "go" whenever it arrives.
    let lines: Vec<&str> = out.lines().filter(|l| *l != "go").collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("/dev/pts/"), "{out}");
    assert_eq!(lines[1], "is-a-tty", "{out}");
    assert_eq!(lines[2], "40 100", "{out}");

    rt.kill(id, nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(wait(c.pid), 128 + 9);
    rt.delete(id, false).unwrap();
}
