//! RUN: the command runs as a container through the engine, exactly as `docker run`
//! would run it (same backend, network as asked), its output relayed to the build
//! stream; its writable layer becomes the step's layer.

use std::sync::Arc;

use bollard_stubs::models::{ContainerCreateBody, HostConfig};
use tokio::io::AsyncReadExt;

use super::progress::Progress;
use crate::backend::AttachOptions;
use crate::engine::{CreateRequest, Engine, EngineError, WaitCondition};

/// How long output may still arrive after the process exited.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// One RUN.
pub struct RunSpec {
    /// The image to run on.
    pub image: String,
    /// The full command (shell or exec form resolved).
    pub argv: Vec<String>,
    /// Variables beyond the image's `Env` (build args in force).
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// `--network` of the build or of the RUN (`default`, `none`, `host`, a network).
    pub network: Option<String>,
    /// `--isolation` of the build.
    pub isolation: Option<String>,
}

/// A finished RUN container.
pub struct Ran {
    /// The container's id.
    pub id: String,
    /// The command's exit code.
    pub exit_code: i32,
    /// The container's writable layer on this host (a copy for a container in a VM).
    pub upper: Option<crate::backend::WritableLayer>,
    /// Where it ran (`native`, `vm`, ...), for messages.
    pub isolation: String,
}

/// Creates, starts and waits for the container of a RUN, streaming its output.
pub async fn run(
    engine: &Arc<Engine>,
    spec: RunSpec,
    progress: &Progress,
) -> Result<Ran, EngineError> {
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        // The whole command as the entrypoint: the image's ENTRYPOINT plays no part.
        entrypoint: Some(spec.argv),
        cmd: Some(Vec::new()),
        env: Some(spec.env),
        user: spec.user,
        working_dir: spec.workdir,
        host_config: Some(HostConfig {
            network_mode: spec.network,
            ..Default::default()
        }),
        ..Default::default()
    };
    let (id, _) = engine
        .create_container(CreateRequest {
            name: None,
            body,
            isolation: spec.isolation,
        })
        .await?;
    progress.say(format!(" ---> Running in {}\n", &id[..12]));
    let ran = run_created(engine, &id, progress).await;
    match ran {
        Ok(exit_code) => {
            let rec = engine.container(&id)?;
            let upper = engine.writable_layer(&rec).await?;
            let isolation = rec.isolation.to_string();
            Ok(Ran {
                id,
                exit_code,
                upper,
                isolation,
            })
        }
        Err(e) => {
            let _ = engine.remove_container(&id, true).await;
            Err(e)
        }
    }
}

async fn run_created(
    engine: &Arc<Engine>,
    id: &str,
    progress: &Progress,
) -> Result<i32, EngineError> {
    // Attached before the start, as `docker run` attaches: output streams live and the
    // stream ends with the process.
    let attach = engine
        .attach_container(
            id,
            AttachOptions {
                stdin: false,
                stdout: true,
                stderr: true,
            },
        )
        .await?;
    let exited = engine.wait_container(id, WaitCondition::NextExit)?;
    engine.start_container(id).await?;
    let mut io = attach.await?;
    let tty = engine.container(id)?.tty();
    let mut exited = Box::pin(exited);
    let mut code = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let read = match code {
            None => tokio::select! {
                r = io.read(&mut buf) => r,
                c = &mut exited => {
                    code = Some(c?);
                    continue;
                }
            },
            // Exited: drain what is left, but never wait long for an end that does not come.
            Some(_) => match tokio::time::timeout(DRAIN, io.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if tty {
            progress.say(String::from_utf8_lossy(&buf[..n]).into_owned());
            continue;
        }
        pending.extend_from_slice(&buf[..n]);
        // docker's multiplexed frames: [stream, 0, 0, 0, size (u32 BE)] then the payload.
        while pending.len() >= 8 {
            let size =
                u32::from_be_bytes([pending[4], pending[5], pending[6], pending[7]]) as usize;
            if pending.len() < 8 + size {
                break;
            }
            let payload: Vec<u8> = pending.drain(..8 + size).skip(8).collect();
            progress.say(String::from_utf8_lossy(&payload).into_owned());
        }
    }
    match code {
        Some(c) => Ok(c),
        None => exited.await,
    }
}
