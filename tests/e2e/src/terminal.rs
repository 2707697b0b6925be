//! Commands under a pseudo-terminal made by util-linux `script`, for `-it` tests.

use std::process::Command;
use std::time::Duration;

use crate::command::{run_with_timeout, CmdOutput};
use crate::daemon::Daemon;

/// `s` single-quoted for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs the shell command line `line` under `script`, in a 30x100 terminal (script's pty
/// starts at 0x0 when our stdin is not a terminal), with the client environment pointed
/// at `d`.
pub fn under_script(d: &Daemon, line: &str, timeout: Duration) -> CmdOutput {
    let line = format!("stty rows 30 cols 100; {line}");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]);
    cmd.env("DOCKER_CONFIG", d.dir().join("docker-config"))
        .env("VMRUN_DATA_ROOT", d.data_root())
        .env("VMRUN_EXEC_ROOT", d.exec_root())
        .env("DOCKER_CLI_HINTS", "false");
    run_with_timeout(cmd, None, timeout)
}

/// Runs `cmd` (program, arguments, added environment) under `script` in a 30x100
/// terminal, with deadline `timeout`.
pub fn command_under_script(cmd: &Command, timeout: Duration) -> CmdOutput {
    let mut words: Vec<String> = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    let quoted: Vec<String> = words.iter().map(|a| shell_quote(a)).collect();
    let line = format!("stty rows 30 cols 100; {}", quoted.join(" "));
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            script.env(k, v);
        }
    }
    run_with_timeout(script, None, timeout)
}

/// The `rows cols` line `stty size` printed in `out`. The terminal's echo of a NUL byte
/// (`^@`, which the docker CLI sends on `-it`, moby#53701) may precede it on its line.
pub fn stty_size(out: &CmdOutput) -> Option<String> {
    out.stdout
        .lines()
        .map(|l| l.trim().trim_start_matches("^@").trim())
        .find(|l| l.split(' ').count() == 2 && l.split(' ').all(|n| n.parse::<u32>().is_ok()))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_line_is_found_behind_an_echoed_nul() {
        let out = CmdOutput {
            cmdline: "script".into(),
            code: 0,
            stdout: "/dev/pts/0\r\n^@30 100\r\n".into(),
            stderr: String::new(),
            timed_out: false,
        };
        assert_eq!(stty_size(&out).as_deref(), Some("30 100"));
    }
}
