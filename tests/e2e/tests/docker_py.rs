//! The Python SDK (`docker-py`, Debian's `python3-docker`, the library docker-compose 1.29
//! is built on) against vmrund: it reads an exec's hijacked stream from the raw socket
//! under its HTTP reader, so output that reached the client together with the `101`
//! answer was lost (docker-compose's `exec -T` then printed nothing and exited 0). The
//! daemon now starts the process only after that answer has gone out.
//!
//! Needs root and python3 with the `docker` module; skips, saying which, without them.

use vmrun_e2e::{require_root, require_tool, Daemon};

/// Runs `echo hello` as an exec `RUNS` times through docker-py and prints how many
/// streams came back without the line.
const SCRIPT: &str = r#"
import sys, docker
client = docker.DockerClient(base_url=sys.argv[1])
ct = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none")
runs, lost = int(sys.argv[2]), 0
for _ in range(runs):
    exec_id = client.api.exec_create(ct.id, ["echo", "hello"], tty=False)["Id"]
    out = b"".join(client.api.exec_start(exec_id, tty=False, stream=True))
    if out.strip() != b"hello":
        lost += 1
ct.remove(force=True)
print(f"lost {lost} of {runs}")
"#;

#[test]
fn docker_py_gets_the_whole_output_of_short_execs() {
    if !require_root() || !require_tool("python3") {
        return;
    }
    let has_module = std::process::Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_module {
        vmrun_test_skip::report(format_args!(
            "python3 has no docker module (Debian package python3-docker)"
        ));
        return;
    }
    let d = Daemon::start();
    let url = format!("unix://{}", d.socket().display());
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", SCRIPT, &url, "40"]);
    let out = vmrun_e2e::run_with_timeout(cmd, None, std::time::Duration::from_secs(300));
    out.ok();
    assert_eq!(out.stdout.trim(), "lost 0 of 40", "{out}");
}
