//! A blocking CRI client (`runtime.v1.RuntimeService`) over containerd's Unix socket:
//! tonic's generic gRPC client with prost's codec, driven by a tokio runtime of its own,
//! each call with a deadline.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};

use super::proto::*;

/// The CRI service of calls that name none.
const SERVICE: &str = "runtime.v1.RuntimeService";

/// A connected client.
pub struct CriClient {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
}

impl CriClient {
    /// Connects to the gRPC socket `socket`.
    pub fn connect(socket: &Path) -> Result<CriClient, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let path: PathBuf = socket.to_owned();
        let channel = runtime.block_on(async move {
            // The URI is a placeholder: the connector dials the socket.
            Endpoint::from_static("http://[::]:0")
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
                .map_err(|e| format!("connecting to {}: {e}", socket.display()))
        })?;
        Ok(CriClient { runtime, channel })
    }

    /// Calls `method` (of the runtime service, or `Service/Method`) with `req`, waiting
    /// `timeout` at most; the error says which call failed and gRPC's status.
    pub fn call<Req, Resp>(&self, method: &str, req: Req, timeout: Duration) -> Result<Resp, String>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let full = if method.contains('/') {
            format!("/{method}")
        } else {
            format!("/{SERVICE}/{method}")
        };
        let path = PathAndQuery::from_str(&full).map_err(|e| format!("{method}: {e}"))?;
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let call = async move {
            grpc.ready()
                .await
                .map_err(|e| format!("{method}: not ready: {e}"))?;
            let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
            grpc.unary(tonic::Request::new(req), path, codec)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| format!("{method}: {:?}: {}", s.code(), s.message()))
        };
        self.runtime.block_on(async {
            tokio::time::timeout(timeout, call)
                .await
                .map_err(|_| format!("{method}: no answer in {timeout:?}"))?
        })
    }

    /// `Version`.
    pub fn version(&self) -> Result<VersionResponse, String> {
        self.call(
            "Version",
            VersionRequest {
                version: "v1".into(),
            },
            Duration::from_secs(10),
        )
    }

    /// Whether the CRI knows image `name` (`ImageService.ImageStatus`).
    pub fn image_present(&self, name: &str) -> Result<bool, String> {
        let req = ImageStatusRequest {
            image: Some(ImageSpec { image: name.into() }),
        };
        self.call::<_, ImageStatusResponse>(
            "runtime.v1.ImageService/ImageStatus",
            req,
            Duration::from_secs(10),
        )
        .map(|r| r.image.is_some_and(|i| !i.id.is_empty()))
    }

    /// `RunPodSandbox` of `config` with `handler`: the sandbox's id.
    pub fn run_pod_sandbox(
        &self,
        config: &PodSandboxConfig,
        handler: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        };
        self.call::<_, RunPodSandboxResponse>("RunPodSandbox", req, timeout)
            .map(|r| r.pod_sandbox_id)
    }

    /// `PodSandboxStatus`.
    pub fn pod_sandbox_status(&self, id: &str) -> Result<PodSandboxStatus, String> {
        let req = PodSandboxIdRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        };
        self.call::<_, PodSandboxStatusResponse>("PodSandboxStatus", req, Duration::from_secs(30))?
            .status
            .ok_or_else(|| format!("PodSandboxStatus of {id}: no status"))
    }

    /// `StopPodSandbox`, then (`remove`) `RemovePodSandbox`.
    pub fn stop_pod_sandbox(
        &self,
        id: &str,
        remove: bool,
        timeout: Duration,
    ) -> Result<(), String> {
        let req = PodSandboxIdRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        };
        self.call::<_, Empty>("StopPodSandbox", req.clone(), timeout)?;
        if remove {
            self.call::<_, Empty>("RemovePodSandbox", req, timeout)?;
        }
        Ok(())
    }

    /// `CreateContainer` of `config` in `sandbox` (made from `sandbox_config`): its id.
    pub fn create_container(
        &self,
        sandbox: &str,
        config: &ContainerConfig,
        sandbox_config: &PodSandboxConfig,
        timeout: Duration,
    ) -> Result<String, String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(config.clone()),
            sandbox_config: Some(sandbox_config.clone()),
        };
        self.call::<_, CreateContainerResponse>("CreateContainer", req, timeout)
            .map(|r| r.container_id)
    }

    /// `StartContainer`.
    pub fn start_container(&self, id: &str, timeout: Duration) -> Result<(), String> {
        let req = ContainerIdRequest {
            container_id: id.into(),
        };
        self.call::<_, Empty>("StartContainer", req, timeout)
            .map(drop)
    }

    /// `ContainerStatus`.
    pub fn container_status(&self, id: &str) -> Result<ContainerStatus, String> {
        let req = ContainerIdRequest {
            container_id: id.into(),
        };
        self.call::<_, ContainerStatusResponse>("ContainerStatus", req, Duration::from_secs(30))?
            .status
            .ok_or_else(|| format!("ContainerStatus of {id}: no status"))
    }

    /// `ExecSync` of `cmd` in container `id`, `timeout_s` seconds at most.
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout_s: i64,
    ) -> Result<ExecSyncResponse, String> {
        let req = ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: timeout_s,
        };
        let deadline = Duration::from_secs(u64::try_from(timeout_s).unwrap_or(0) + 30);
        self.call("ExecSync", req, deadline)
    }

    /// `StopContainer` (`grace_s` before SIGKILL) and `RemoveContainer`.
    pub fn stop_and_remove_container(&self, id: &str, grace_s: i64) -> Result<(), String> {
        let timeout = Duration::from_secs(u64::try_from(grace_s).unwrap_or(0) + 60);
        let stop = StopContainerRequest {
            container_id: id.into(),
            timeout: grace_s,
        };
        self.call::<_, Empty>("StopContainer", stop, timeout)?;
        let remove = ContainerIdRequest {
            container_id: id.into(),
        };
        self.call::<_, Empty>("RemoveContainer", remove, timeout)
            .map(drop)
    }
}
