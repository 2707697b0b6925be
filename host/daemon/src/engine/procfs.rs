//! Reading processes from `/proc` for `top`, and host CPU time for `stats`.

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Host CPU time in nanoseconds, from the first line of `/proc/stat`, as docker's
/// `system_cpu_usage`.
pub fn system_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    ticks.saturating_mul(1_000_000_000) / ticks_per_second()
}

/// A `ps -ef` row for `pid`: UID PID PPID C STIME TTY TIME CMD.
pub fn ps_row(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ppid = fields.get(1)?.to_string();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let secs = (utime + stime) / ticks_per_second();
    let time = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("0")
        .to_string();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut cmd = cmdline
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if cmd.is_empty() {
        cmd = format!("[{}]", &stat[stat.find('(')? + 1..close]);
    }
    Some(vec![
        uid,
        pid.to_string(),
        ppid,
        "0".into(),
        "-".into(),
        "?".into(),
        time,
        cmd,
    ])
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_process() {
        let row = super::ps_row(std::process::id() as i32).unwrap();
        assert_eq!(row[1], std::process::id().to_string());
        assert!(super::system_cpu_ns() > 0);
    }
}
