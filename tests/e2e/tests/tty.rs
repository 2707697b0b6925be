//! Terminals: `run -it` under a pseudo-terminal made by util-linux `script`.

use std::time::Duration;

use vmrun_e2e::terminal::{shell_quote, stty_size};
use vmrun_e2e::{bin_dir, require_root, require_tool, Daemon};

/// `client run --rm -it busybox sh -c inner` in a 30x100 terminal.
fn under_script(d: &Daemon, client: &str, inner: &str) -> vmrun_e2e::CmdOutput {
    let line = format!(
        "{} -H {} run --rm -it busybox sh -c {}",
        shell_quote(client),
        shell_quote(&d.host()),
        shell_quote(inner)
    );
    vmrun_e2e::terminal::under_script(d, &line, Duration::from_secs(30))
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
    let size = stty_size(&out).unwrap_or_else(|| panic!("no `stty size` line:\n{out}"));
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
