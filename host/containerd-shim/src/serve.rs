//! The shim's server process (containerd's `-socket` invocation): the task service on
//! containerd's ttrpc socket under both names containerd uses for it —
//! `containerd.task.v2.Task` (containerd 1.x) and `containerd.task.v3.Task` (2.x; the
//! `containerd-shim` crate's bootstrap registers only this one), whose messages are the
//! same on the wire. The crate's own bootstrap still serves `start`, `delete` and `-info`.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use containerd_shim::asynchronous::ExitSignal;
use containerd_shim::protos::shim_async::create_task;
use containerd_shim::protos::ttrpc::r#async::transport::Listener;
use containerd_shim::protos::ttrpc::r#async::Server;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::Flags;

use crate::events::Events;
use crate::tasks::TaskService;

/// The service name of containerd 1.x's task API.
const TASK_V2: &str = "containerd.task.v2.Task";

/// Serves the task API on `flags.socket` until a Shutdown with no task left.
pub async fn serve(flags: Flags) -> anyhow::Result<()> {
    if flags.socket.is_empty() {
        return Err(anyhow!("-socket is empty"));
    }
    containerd_shim::logger::init(flags.debug, "info", &flags.namespace, &flags.id)
        .context("opening containerd's log FIFO")?;
    let path = flags
        .socket
        .strip_prefix("unix://")
        .unwrap_or(&flags.socket);
    let Some(listener) = bind(Path::new(path))? else {
        // The sandbox's shim serves already (a second task of the same pod).
        started();
        return Ok(());
    };
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").context("TTRPC_ADDRESS")?;
    let publisher = RemotePublisher::new(&ttrpc_address)
        .await
        .context("connecting to containerd's event service")?;
    let exit = Arc::new(ExitSignal::default());
    let task = Arc::new(TaskService::new(
        crate::isolation::Isolation::from_env(),
        Events::new(publisher, flags.namespace.clone()),
        exit.clone(),
    ));
    let mut services = create_task(task.clone());
    let v2 = create_task(task).into_values().next();
    if let Some(v2) = v2 {
        services.insert(TASK_V2.to_string(), v2);
    }
    listener
        .set_nonblocking(true)
        .context("making the socket non-blocking")?;
    let listener = Listener::try_from(listener).context("the ttrpc listener")?;
    let mut server = Server::new()
        .add_listener(listener)
        .register_service(services);
    server.start().await.context("starting the ttrpc server")?;
    started();
    log::info!("serving {}", flags.socket);
    exit.wait().await;
    let _ = server.shutdown().await;
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// The listening socket at `path`, or `None` when a live server holds it.
fn bind(path: &Path) -> anyhow::Result<Option<UnixListener>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match UnixListener::bind(path) {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Ok(None);
            }
            std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
            UnixListener::bind(path)
                .map(Some)
                .with_context(|| format!("listening on {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("listening on {}", path.display())),
    }
}

/// Tells the `start` process waiting on our stdout that we serve: its pipe closes when
/// stdout becomes stderr (what the Go shim and the crate do).
fn started() {
    // SAFETY: dup2 on the process's own standard descriptors, which stay open.
    let r = unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) };
    if r < 0 {
        log::warn!(
            "closing the start pipe: {}",
            std::io::Error::last_os_error()
        );
    }
}
