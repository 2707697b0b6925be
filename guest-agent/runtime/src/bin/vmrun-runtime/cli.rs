//! The command line, shaped like runc 1.1's (flags containerd's go-runc and
//! podman's conmon pass are all accepted).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "vmrun-runtime",
    about = "A runc-compatible OCI container runtime",
    disable_version_flag = true
)]
pub(crate) struct Cli {
    /// Root directory for container state.
    #[arg(long, default_value = "/run/vmrun-runtime", global = true)]
    pub(crate) root: PathBuf,
    /// Also write errors and warnings to this file.
    #[arg(long, global = true)]
    pub(crate) log: Option<PathBuf>,
    /// Format of the --log file.
    #[arg(long = "log-format", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub(crate) log_format: LogFormat,
    /// Log debug messages.
    #[arg(long, global = true)]
    pub(crate) debug: bool,
    /// Use systemd for cgroups (refused: cgroupfs only).
    #[arg(long = "systemd-cgroup", global = true)]
    pub(crate) systemd_cgroup: bool,
    /// runc's rootless mode ("true" is refused; "false" and "auto" run as root).
    #[arg(long)]
    pub(crate) rootless: Option<String>,
    /// Accepted for runc compatibility (checkpointing is not supported).
    #[arg(long, global = true, hide = true)]
    pub(crate) criu: Option<PathBuf>,
    /// Print the version.
    #[arg(short = 'v', long)]
    pub(crate) version: bool,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Table,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a container: set up, waiting for `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container; waits for it unless --detach.
    Run(RunArgs),
    /// Print the OCI state of a container (JSON).
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init, or with --all to every process.
    Kill {
        /// Signal every process of the container.
        #[arg(long, short)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container's state and cgroup.
    Delete {
        /// Kill a running container first.
        #[arg(long, short)]
        force: bool,
        id: String,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// Print only the ids.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run a new process inside a running container.
    Exec(Box<ExecArgs>),
    /// List the processes of a container.
    Ps {
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        id: String,
        /// Options for ps(1) (table format; default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print container events: resource usage every --interval, or once with --stats.
    Events {
        /// Print the usage once and exit.
        #[arg(long)]
        stats: bool,
        /// Interval between usage events (Go duration: 5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Freeze every process of a container (cgroup freezer).
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Apply new resource limits (OCI `linux.resources` JSON).
    Update {
        /// File with the resources JSON, or `-` for stdin.
        #[arg(long, short)]
        resources: PathBuf,
        id: String,
    },
    /// Print what this runtime supports (JSON, like `runc features`).
    Features,
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
        /// A spec for rootless containers (refused).
        #[arg(long)]
        rootless: bool,
    },
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    /// The bundle directory (config.json and the rootfs).
    #[arg(long, short, default_value = ".")]
    pub(crate) bundle: PathBuf,
    /// A Unix socket that receives the terminal's master fd (process.terminal).
    #[arg(long = "console-socket")]
    pub(crate) console_socket: Option<PathBuf>,
    /// Write the init's pid here.
    #[arg(long = "pid-file")]
    pub(crate) pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility; the rootfs is always entered with pivot_root.
    #[arg(long = "no-pivot")]
    pub(crate) no_pivot: bool,
    /// Accepted for runc compatibility; no session keyring is made.
    #[arg(long = "no-new-keyring")]
    pub(crate) no_new_keyring: bool,
    /// Extra fds to pass to the container (only 0 is supported).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub(crate) preserve_fds: u32,
    pub(crate) id: String,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) create: CreateArgs,
    /// Return once the container runs, without waiting for it.
    #[arg(long, short)]
    pub(crate) detach: bool,
    /// Accepted for runc compatibility.
    #[arg(long = "no-subreaper")]
    pub(crate) no_subreaper: bool,
    /// Keep the container's state after it exits (foreground run).
    #[arg(long)]
    pub(crate) keep: bool,
}

#[derive(Args)]
pub(crate) struct ExecArgs {
    /// An OCI process JSON file (replaces the command and the flags below).
    #[arg(long, short)]
    pub(crate) process: Option<PathBuf>,
    /// A Unix socket that receives the terminal's master fd.
    #[arg(long = "console-socket")]
    pub(crate) console_socket: Option<PathBuf>,
    /// Return once the process runs, without waiting for it.
    #[arg(long, short)]
    pub(crate) detach: bool,
    /// Write the process's pid here.
    #[arg(long = "pid-file")]
    pub(crate) pid_file: Option<PathBuf>,
    /// Allocate a pseudo-terminal.
    #[arg(long, short)]
    pub(crate) tty: bool,
    /// Working directory inside the container.
    #[arg(long)]
    pub(crate) cwd: Option<PathBuf>,
    /// Extra environment variables (KEY=VALUE).
    #[arg(long, short)]
    pub(crate) env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(long, short)]
    pub(crate) user: Option<String>,
    /// Additional gids.
    #[arg(long = "additional-gids", short = 'g')]
    pub(crate) additional_gids: Vec<u32>,
    /// Extra capabilities (CAP_NAME).
    #[arg(long = "cap", short = 'c')]
    pub(crate) caps: Vec<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    pub(crate) no_new_privs: bool,
    /// Extra fds to pass to the process (only 0 is supported).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub(crate) preserve_fds: u32,
    /// Accepted for runc compatibility (no SELinux/AppArmor support).
    #[arg(long = "process-label", hide = true)]
    pub(crate) process_label: Option<String>,
    /// Accepted for runc compatibility (no SELinux/AppArmor support).
    #[arg(long, hide = true)]
    pub(crate) apparmor: Option<String>,
    pub(crate) id: String,
    /// The command and its arguments (without --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}
