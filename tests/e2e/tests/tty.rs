//! Terminals: `run -it` under a pseudo-terminal made by util-linux `script`.

use std::process::Command;
use std::time::Duration;

use vmrun_e2e::{bin_dir, require_root, require_tool, run_with_timeout, Daemon};

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn under_script(d: &Daemon, client: &str, inner: &str) -> vmrun_e2e::CmdOutput {
    // script's pty starts at 0x0 when our stdin is not a terminal: give it a size
    // the container must see.
    let line = format!(
        "stty rows 30 cols 100; {} -H {} run --rm -it busybox sh -c {}",
        shell_quote(client),
        shell_quote(&d.host()),
        shell_quote(inner)
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]);
    cmd.env("DOCKER_CONFIG", d.dir().join("docker-config"))
        .env("VMRUN_DATA_ROOT", d.data_root())
        .env("VMRUN_EXEC_ROOT", d.exec_root())
        .env("DOCKER_CLI_HINTS", "false");
    run_with_timeout(cmd, None, Duration::from_secs(30))
}

#[test]
fn vmrun_run_it_gets_a_pts() {
    if !(require_root() && require_tool("script")) {
        return;
    }
    let d = Daemon::start();
    let vmrun = bin_dir().join("vmrun");
    let out = under_script(&d, vmrun.to_str().unwrap(), "tty; stty size; exit 3");
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
    assert!(!out.stdout.contains("not a tty"), "{out}");
    // `stty size` prints "rows cols" from the terminal the client passed on.
    let size = out
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.split(' ').count() == 2 && l.split(' ').all(|n| n.parse::<u32>().is_ok()))
        .unwrap_or_else(|| panic!("no `stty size` line:\n{out}"));
    assert_eq!(
        size, "30 100",
        "the terminal size was not passed on:\n{out}"
    );
    out.code_is(3);
}

#[test]
fn docker_run_it_gets_a_pts() {
    if !(require_root() && require_tool("script") && require_tool("docker")) {
        return;
    }
    let d = Daemon::start();
    let out = under_script(&d, "docker", "tty; exit 0");
    out.ok();
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
}

#[test]
fn vmrun_run_it_passes_input_like_docker() {
    if !(require_root() && require_tool("script") && require_tool("docker")) {
        return;
    }
    let d = Daemon::start();
    let vmrun = bin_dir().join("vmrun");
    // Whatever reaches the container's terminal is echoed back. Under `script` with no
    // input of its own, the docker CLI forwards one NUL (echoed as "^@", see
    // moby/moby#53701); vmrun must forward exactly the same bytes, no more, no fewer.
    let ours = under_script(&d, vmrun.to_str().unwrap(), "sleep 0.3; echo x");
    ours.ok();
    let docker = under_script(&d, "docker", "sleep 0.3; echo x");
    docker.ok();
    assert_eq!(
        ours.stdout, docker.stdout,
        "vmrun:\n{ours}\ndocker:\n{docker}"
    );
    assert!(ours.stdout.ends_with("x\r\n"), "{ours}");
}
