//! `vmrun-runtime`: an OCI runtime CLI over the `vmrun-runtime` library, with
//! the same shape as runc/crun (`create`, `start`, `state`, `kill`, `delete`,
//! `run`, `exec`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use vmrun_runtime::{Runtime, Stdio};

#[derive(Parser)]
#[command(name = "vmrun-runtime", version, about = "OCI container runtime")]
struct Cli {
    /// Directory for container state.
    #[arg(long, default_value = "/run/vmrun-runtime", global = true)]
    root: PathBuf,
    /// Accepted for runc compatibility; logs go to stderr.
    #[arg(long, global = true, hide = true)]
    log: Option<PathBuf>,
    /// Accepted for runc compatibility.
    #[arg(long = "log-format", global = true, hide = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container (set up, waiting for `start`).
    Create {
        id: String,
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// Start a created container.
    Start { id: String },
    /// Print the OCI state of a container.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init.
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container's state and cgroup.
    Delete {
        #[arg(long, short)]
        force: bool,
        id: String,
    },
    /// Create, start, wait and delete; exits with the container's exit code.
    Run {
        id: String,
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// Run a command inside a running container and wait for it.
    Exec {
        id: String,
        /// Allocate a pseudo-terminal.
        #[arg(long, short)]
        tty: bool,
        /// Working directory inside the container.
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Extra environment variables (KEY=VALUE).
        #[arg(long, short)]
        env: Vec<String>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// List container ids.
    List,
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VMRUN_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match real_main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("vmrun-runtime: {e:#}");
            std::process::exit(1);
        }
    }
}

fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    Spec::load(&path).with_context(|| format!("loading {}", path.display()))
}

fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("invalid signal {s}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).with_context(|| format!("invalid signal {s}"))
}

fn write_pid_file(path: Option<&Path>, pid: Pid) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, pid.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Waits for `pid`; exit code, or 128+signal.
fn wait_exit_code(pid: Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waitpid"),
        }
    }
}

fn stdio_for(terminal: bool) -> Stdio {
    if terminal {
        Stdio::Terminal
    } else {
        Stdio::Inherit
    }
}

fn real_main() -> Result<i32> {
    let cli = Cli::parse();
    let runtime = Runtime::new(&cli.root);
    match cli.command {
        Command::Create {
            id,
            bundle,
            pid_file,
        } => {
            let spec = load_spec(&bundle)?;
            if spec
                .process()
                .as_ref()
                .and_then(|p| p.terminal())
                .unwrap_or(false)
            {
                bail!("terminal containers need `run` (no --console-socket support)");
            }
            let container = runtime.create(&id, &bundle, &spec, Stdio::Inherit)?;
            write_pid_file(pid_file.as_deref(), container.pid)?;
            Ok(0)
        }
        Command::Start { id } => {
            runtime.start_id(&id)?;
            Ok(0)
        }
        Command::State { id } => {
            let container = runtime.load(&id)?;
            println!("{}", serde_json::to_string_pretty(&container.oci_state())?);
            Ok(0)
        }
        Command::Kill { id, signal } => {
            runtime.kill(&id, parse_signal(&signal)?)?;
            Ok(0)
        }
        Command::Delete { force, id } => {
            runtime.delete(&id, force)?;
            Ok(0)
        }
        Command::List => {
            for id in runtime.list()? {
                println!("{id}");
            }
            Ok(0)
        }
        Command::Run {
            id,
            bundle,
            pid_file,
        } => {
            let spec = load_spec(&bundle)?;
            let terminal = spec
                .process()
                .as_ref()
                .and_then(|p| p.terminal())
                .unwrap_or(false);
            let container = runtime.run(&id, &bundle, &spec, stdio_for(terminal))?;
            write_pid_file(pid_file.as_deref(), container.pid)?;
            let relay = container.console.as_ref().map(|m| relay::spawn(m.as_fd()));
            let code = wait_exit_code(container.pid);
            drop(relay);
            runtime.delete(&id, true)?;
            code
        }
        Command::Exec {
            id,
            tty,
            cwd,
            env,
            command,
        } => {
            let container = runtime.load(&id)?;
            let spec = load_spec(&container.bundle)?;
            let mut process = spec
                .process()
                .clone()
                .context("config.json has no process")?;
            process.set_args(Some(command));
            process.set_terminal(Some(tty));
            if let Some(cwd) = cwd {
                process.set_cwd(cwd);
            }
            if !env.is_empty() {
                let mut all = process.env().clone().unwrap_or_default();
                all.extend(env);
                process.set_env(Some(all));
            }
            let exec = runtime.exec(&id, &process, stdio_for(tty))?;
            let relay = exec.console.as_ref().map(|m| relay::spawn(m.as_fd()));
            let code = wait_exit_code(exec.pid);
            drop(relay);
            code
        }
    }
}

/// Copies between our stdio and a pty master (for `run`/`exec` with a terminal).
mod relay {
    use super::*;
    use std::io::{Read, Write};

    /// Background threads copying stdin -> master and master -> stdout.
    pub(super) fn spawn(master: std::os::fd::BorrowedFd<'_>) -> Option<OwnedFd> {
        let out = master.try_clone_to_owned().ok()?;
        let input = master.try_clone_to_owned().ok()?;
        std::thread::spawn(move || {
            let mut master = std::fs::File::from(out);
            let mut buf = [0u8; 8192];
            let mut stdout = std::io::stdout();
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = stdout.flush();
            }
        });
        let keep = input.try_clone().ok();
        std::thread::spawn(move || {
            let mut master = std::fs::File::from(input);
            let mut buf = [0u8; 8192];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || master.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let _ = keep.as_ref().map(|k| k.as_raw_fd());
        keep
    }
}
