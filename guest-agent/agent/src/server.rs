//! Connections: the hello, then either control requests (each answered from its own task,
//! so a `wait` never holds up the rest) or one stream.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use vmrun_agent_protocol::frame::nonblocking::{read_body, write_frame};
use vmrun_agent_protocol::frame::{decode, encode};
use vmrun_agent_protocol::{
    check_hello, AgentError, ErrorKind, FrameError, Hello, HelloReply, Op, Reply, Request,
    Response, StreamTarget, PROTOCOL_VERSION,
};

use crate::Agent;

/// Where the agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// AF_VSOCK, any CID, this port (in the guest only).
    Vsock(u32),
    /// A Unix socket (the agent run on a host, for tests).
    Unix(PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(port) = s.strip_prefix("vsock:") {
            return port
                .parse()
                .map(Listen::Vsock)
                .map_err(|e| format!("bad vsock port {port:?}: {e}"));
        }
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path".into());
            }
            return Ok(Listen::Unix(path.into()));
        }
        Err(format!("{s:?}: expected vsock:PORT or unix:PATH"))
    }
}

/// Accepts connections until the agent is told to shut down.
pub async fn serve(agent: Arc<Agent>, listen: Listen) -> std::io::Result<()> {
    let mut stop = agent.stop.subscribe();
    match listen {
        Listen::Vsock(port) => {
            let addr = tokio_vsock::VsockAddr::new(tokio_vsock::VMADDR_CID_ANY, port);
            let listener = tokio_vsock::VsockListener::bind(addr)?;
            tracing::info!(port, "listening on vsock");
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((s, _)) => { tokio::spawn(connection(agent.clone(), s)); }
                        Err(e) => tracing::warn!("accept: {e}"),
                    },
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
            }
        }
        Listen::Unix(path) => {
            let _ = std::fs::remove_file(&path);
            let listener = tokio::net::UnixListener::bind(&path)?;
            tracing::info!(path = %path.display(), "listening");
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((s, _)) => { tokio::spawn(connection(agent.clone(), s)); }
                        Err(e) => tracing::warn!("accept: {e}"),
                    },
                    _ = stop.wait_for(|s| *s) => {
                        let _ = std::fs::remove_file(&path);
                        return Ok(());
                    }
                }
            }
        }
    }
}

fn frame_error_response(e: &FrameError, body: Option<&[u8]>) -> Response {
    let kind = match e {
        FrameError::TooLarge { .. } => ErrorKind::TooLarge,
        _ => ErrorKind::BadRequest,
    };
    // A malformed request may still carry a readable id.
    let id = body
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("id")?.as_u64());
    Response {
        id,
        result: Err(AgentError::new(kind, e.to_string())),
    }
}

/// One connection, from the hello to its end.
async fn connection<S>(agent: Arc<Agent>, mut stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if !hello(&agent, &mut stream).await {
        return;
    }
    // The first request decides what the connection is.
    let first = match read_request(&mut stream).await {
        Ok(r) => r,
        Err(Some(resp)) => {
            let fatal = resp.1;
            let _ = write_frame(&mut stream, &resp.0).await;
            if fatal {
                return;
            }
            // A bad first frame: go on as a control connection.
            return control(agent, stream, None).await;
        }
        Err(None) => return,
    };
    if let Op::OpenStream { target } = first.op {
        return open_stream(agent, stream, first.id, target).await;
    }
    control(agent, stream, Some(first)).await
}

/// Reads one request; `Err(Some((reply, fatal)))` for a bad frame, `Err(None)` at the end.
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Request, Option<(Response, bool)>> {
    let body = match read_body(stream).await {
        Ok(b) => b,
        Err(e @ FrameError::TooLarge { .. }) => {
            let fatal = !e.recoverable();
            return Err(Some((frame_error_response(&e, None), fatal)));
        }
        Err(FrameError::Closed) => return Err(None),
        Err(e) => {
            tracing::debug!("connection ended: {e}");
            return Err(None);
        }
    };
    decode::<Request>(&body).map_err(|e| Some((frame_error_response(&e, Some(&body)), false)))
}

/// The hello exchange; false when the connection should end.
async fn hello<S: AsyncRead + AsyncWrite + Unpin>(agent: &Agent, stream: &mut S) -> bool {
    let refuse = |message: String| HelloReply::Refused {
        version: PROTOCOL_VERSION,
        message,
    };
    let hello: Hello = match read_body(stream).await {
        Ok(body) => match decode(&body) {
            Ok(h) => h,
            Err(e) => {
                let reply = refuse(format!("expected a hello frame: {e}"));
                let _ = write_frame(stream, &reply).await;
                return false;
            }
        },
        Err(FrameError::Closed) => return false,
        Err(e) => {
            let _ = write_frame(stream, &refuse(format!("expected a hello frame: {e}"))).await;
            return false;
        }
    };
    if let Err(refused) = check_hello(&hello) {
        tracing::warn!(client = %hello.client, version = hello.version, "refused a client");
        let _ = write_frame(stream, &refused).await;
        return false;
    }
    let clock_adjusted = match hello.host_time_unix_nanos {
        Some(t) if agent.owns_clock => crate::clock::sync_to(t).map(|r| r.0).unwrap_or(false),
        _ => false,
    };
    let welcome = HelloReply::Welcome {
        version: PROTOCOL_VERSION,
        agent: crate::agent_version(),
        kernel_release: crate::kernel_release(),
        clock_adjusted,
    };
    write_frame(stream, &welcome).await.is_ok()
}

/// Serves control requests until the client closes or sends an unreadable stream.
async fn control<S>(agent: Arc<Agent>, stream: S, first: Option<Request>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::unbounded_channel::<Response>();
    let writer = tokio::spawn(async move {
        while let Some(resp) = rx.recv().await {
            let frame = match encode(&resp) {
                Ok(f) => f,
                Err(e) => match encode(&Response {
                    id: resp.id,
                    result: Err(AgentError::new(ErrorKind::TooLarge, e.to_string())),
                }) {
                    Ok(f) => f,
                    Err(_) => continue,
                },
            };
            if tokio::io::AsyncWriteExt::write_all(&mut wr, &frame)
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let run = |req: Request| {
        let (agent, tx) = (agent.clone(), tx.clone());
        tokio::spawn(async move {
            tracing::debug!(id = req.id, op = ?req.op, "request");
            let result = match req.op {
                Op::OpenStream { .. } => Err(AgentError::new(
                    ErrorKind::BadRequest,
                    "open_stream must be the first request on a new connection",
                )),
                op => agent.dispatch(op).await,
            };
            let _ = tx.send(Response {
                id: Some(req.id),
                result,
            });
        });
    };
    if let Some(req) = first {
        run(req);
    }
    loop {
        match read_request(&mut rd).await {
            Ok(req) => run(req),
            Err(Some((resp, fatal))) => {
                let _ = tx.send(resp);
                if fatal {
                    break;
                }
            }
            Err(None) => break,
        }
    }
    drop(tx);
    // Requests still in flight (a wait) finish on their own and their answers go nowhere;
    // the writer ends with the last of them.
    let _ = writer.await;
}

async fn open_stream<S>(agent: Arc<Agent>, mut stream: S, id: u64, target: StreamTarget)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let fail = |e: AgentError| Response {
        id: Some(id),
        result: Err(e),
    };
    match target {
        StreamTarget::Attach {
            id: pid,
            stdin,
            stdout,
            stderr,
        } => {
            let opened = match agent.procs.get(&pid) {
                Ok(e) => crate::streams::open_attach(&e, stdin, stdout, stderr).await,
                Err(e) => Err(e),
            };
            match opened {
                Ok((shim, early)) => {
                    if send_ready(&mut stream, id).await {
                        crate::streams::splice(&mut stream, shim, early).await;
                    }
                }
                Err(e) => {
                    let _ = write_frame(&mut stream, &fail(e)).await;
                }
            }
        }
        StreamTarget::PutFile { path, size } => match crate::data_files::target(&path) {
            Ok(target) => {
                if send_ready(&mut stream, id).await {
                    crate::data_files::receive(&mut stream, &target, size).await;
                }
            }
            Err(e) => {
                let _ = write_frame(&mut stream, &fail(e)).await;
            }
        },
        StreamTarget::Forward {
            id: cid,
            port,
            protocol,
            return_token,
        } => {
            let returns = &agent.forward_returns;
            let opened = async {
                let pending = crate::forward::prepare(returns, return_token)?;
                let pid = agent.procs.container_pid(&cid)?;
                Ok((crate::forward::open(pid, port, protocol).await?, pending))
            };
            match opened.await {
                Ok((upstream, pending)) => {
                    if send_ready(&mut stream, id).await {
                        crate::forward::relay(&mut stream, upstream, returns, pending).await;
                    }
                }
                Err(e) => {
                    if let Some(token) = return_token {
                        returns.forget(token);
                    }
                    let _ = write_frame(&mut stream, &fail(e)).await;
                }
            }
        }
        StreamTarget::Share {
            id: share_id,
            read_only,
            return_token,
        } => {
            let returns = &agent.forward_returns;
            let pending = crate::forward::prepare(returns, Some(return_token));
            match pending.and_then(|p| Ok((crate::share::mount(&share_id, read_only)?, p))) {
                Ok((share, pending)) => {
                    if send_ready(&mut stream, id).await {
                        crate::share::relay(&mut stream, share, returns, pending).await;
                    } else {
                        share.unmount();
                    }
                }
                Err(e) => {
                    returns.forget(return_token);
                    let _ = write_frame(&mut stream, &fail(e)).await;
                }
            }
        }
        StreamTarget::Network {
            id: cid,
            network,
            return_token,
        } => {
            let returns = &agent.forward_returns;
            let opened = async {
                let pending = crate::forward::prepare(returns, Some(return_token))?;
                let pid = agent.procs.container_pid(&cid)?;
                Ok::<_, AgentError>((crate::guest_net::make_device(pid, network).await?, pending))
            };
            match opened.await {
                Ok((tap, pending)) => {
                    if send_ready(&mut stream, id).await {
                        crate::guest_net::relay(&mut stream, tap, returns, pending).await;
                    }
                }
                Err(e) => {
                    returns.forget(return_token);
                    let _ = write_frame(&mut stream, &fail(e)).await;
                }
            }
        }
        StreamTarget::ForwardReturn { token } => {
            if send_ready(&mut stream, id).await {
                agent.forward_returns.deliver(token, Box::new(stream));
            }
        }
        StreamTarget::Listeners { id: cid } => {
            let found = agent
                .procs
                .container_pid(&cid)
                .and_then(|pid| Ok((pid, agent.procs.container(&cid)?)));
            match found {
                Ok((pid, entry)) => {
                    if send_ready(&mut stream, id).await {
                        crate::listeners::watch(&mut stream, pid, entry).await;
                    }
                }
                Err(e) => {
                    let _ = write_frame(&mut stream, &fail(e)).await;
                }
            }
        }
        StreamTarget::DataTar { path } => match crate::data_files::target(&path) {
            Ok(dir) if dir.is_dir() => {
                if send_ready(&mut stream, id).await {
                    crate::data_tar::send(&mut stream, dir).await;
                }
            }
            Ok(dir) => {
                let e = AgentError::new(
                    ErrorKind::NotFound,
                    format!("{} is not a directory", dir.display()),
                );
                let _ = write_frame(&mut stream, &fail(e)).await;
            }
            Err(e) => {
                let _ = write_frame(&mut stream, &fail(e)).await;
            }
        },
        StreamTarget::Archive {
            id: cid,
            path,
            stopped,
            stopped_mounts,
            stat_only,
        } => {
            let a = agent.clone();
            let found = crate::container_files::blocking(move || {
                let opened = crate::container_files::open(
                    &a.procs,
                    &cid,
                    stopped.as_ref(),
                    &stopped_mounts,
                    true,
                )?;
                crate::container_files::find(opened, &path)
            })
            .await;
            match found {
                Ok(found) => {
                    if send_ready(&mut stream, id).await {
                        crate::container_files::send_archive(&mut stream, found, stat_only).await;
                    }
                }
                Err(e) => {
                    let _ = write_frame(&mut stream, &fail(e)).await;
                }
            }
        }
        StreamTarget::Extract {
            id: cid,
            path,
            stopped,
            stopped_mounts,
            no_overwrite_dir_non_dir,
            copy_uid_gid,
            user,
        } => {
            let a = agent.clone();
            let opened = crate::container_files::blocking(move || {
                crate::container_files::open(
                    &a.procs,
                    &cid,
                    stopped.as_ref(),
                    &stopped_mounts,
                    true,
                )
            })
            .await;
            match opened {
                Ok(opened) => {
                    if send_ready(&mut stream, id).await {
                        let opts = vmrun_containerfs::ExtractOptions {
                            no_overwrite_dir_non_dir,
                            copy_uid_gid,
                        };
                        crate::container_files::receive(&mut stream, opened, path, opts, user)
                            .await;
                    }
                }
                Err(e) => {
                    let _ = write_frame(&mut stream, &fail(e)).await;
                }
            }
        }
        StreamTarget::Export { id: cid, stopped } => {
            let a = agent.clone();
            let opened = crate::container_files::blocking(move || {
                crate::container_files::open(&a.procs, &cid, stopped.as_ref(), &[], false)
            })
            .await;
            match opened {
                Ok(opened) => {
                    if send_ready(&mut stream, id).await {
                        crate::container_files::send_export(&mut stream, opened).await;
                    }
                }
                Err(e) => {
                    let _ = write_frame(&mut stream, &fail(e)).await;
                }
            }
        }
        StreamTarget::Logs { id: cid, follow } => {
            let found = agent.procs.container(&cid).and_then(|e| {
                let path = crate::inspect::log_path(&e)?.to_owned();
                Ok((e, path))
            });
            match found {
                Ok((e, path)) => {
                    if send_ready(&mut stream, id).await {
                        crate::streams::send_log(&mut stream, &path, follow, &e).await;
                    }
                }
                Err(e) => {
                    let _ = write_frame(&mut stream, &fail(e)).await;
                }
            }
        }
    }
}

/// Writes the `StreamReady` reply; false when the connection is gone.
async fn send_ready<S: AsyncWrite + Unpin>(stream: &mut S, id: u64) -> bool {
    let resp = Response {
        id: Some(id),
        result: Ok(Reply::StreamReady),
    };
    write_frame(stream, &resp).await.is_ok()
}
