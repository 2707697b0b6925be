//! The shim binary's life cycle (`containerd-shim` crate's [`Shim`]): `start` groups the
//! tasks of one pod sandbox into one shim (and so one VM) by the CRI's
//! `io.kubernetes.cri.sandbox-id` annotation, every other task gets its own, and picks
//! the sandbox's [`Isolation`] (a VM, or none) for the server it spawns; `delete`
//! cleans up after a shim that is gone (its rootfs mounts); the server's task service is
//! [`TaskService`].

use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::asynchronous::{spawn, ExitSignal, Shim};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, DeleteResponse, Error, Flags, StartOpts};

use crate::events::{timestamp, Events};
use crate::isolation::{self, Isolation};
use crate::tasks::TaskService;

use crate::sandbox::SANDBOX_ID;

/// The shim process.
pub struct VmShim {
    exit: Arc<ExitSignal>,
    namespace: String,
}

#[async_trait]
impl Shim for VmShim {
    type T = TaskService;

    async fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        VmShim {
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> Result<String, Error> {
        // containerd starts `start` in the task's bundle.
        let spec = read_spec(std::path::Path::new("config.json"));
        let argv0 = std::env::args_os().next().unwrap_or_default();
        let isolation = Isolation::for_task(std::path::Path::new(&argv0), spec.as_ref())
            .map_err(Error::InvalidArgument)?;
        let mut grouping = spec
            .as_ref()
            .and_then(sandbox_of)
            .unwrap_or(opts.id.clone());
        if isolation == Isolation::None {
            // Its own server, apart from a VM shim of the same sandbox id.
            grouping = format!("native-{grouping}");
        }
        // Daemons before containerd 2.3 send no version and take a bare address, which
        // is all containerd 1.6 understands (1.7 and later also read the crate's JSON).
        let bare_address = opts.containerd_version.is_empty();
        let vars = vec![(isolation::ENV, isolation.as_str())];
        let address = spawn(opts, &grouping, vars).await?;
        // Where containerd (1.6 reads it when it restarts) and tools find the server, as
        // the Go shims write it: `address` in the bundle.
        std::fs::write("address", &address)
            .map_err(|e| Error::Other(format!("writing address: {e}")))?;
        if bare_address {
            use std::io::Write;
            let mut stdout = std::io::stdout();
            let written = stdout
                .write_all(address.as_bytes())
                .and_then(|()| stdout.flush());
            std::process::exit(if written.is_ok() { 0 } else { 1 });
        }
        Ok(address)
    }

    async fn delete_shim(&mut self) -> Result<DeleteResponse, Error> {
        if let Ok(bundle) = std::env::current_dir() {
            if let Err(e) = crate::rootfs::unmount(&bundle) {
                log::warn!("cleaning up {}: {e:#}", bundle.display());
            }
        }
        Ok(DeleteResponse {
            exit_status: 128 + 9,
            exited_at: MessageField::some(timestamp(std::time::SystemTime::now())),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        TaskService::new(
            Isolation::from_env(),
            Events::new(publisher, self.namespace.clone()),
            self.exit.clone(),
        )
    }
}

/// The task's spec at `config`, if readable.
fn read_spec(config: &std::path::Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(config).ok()?).ok()
}

/// The pod sandbox of the task whose spec is `spec`, if the CRI made it.
fn sandbox_of(spec: &serde_json::Value) -> Option<String> {
    spec.get("annotations")?
        .get(SANDBOX_ID)?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_tasks_group_by_their_sandbox() {
        let dir = std::env::temp_dir().join(format!("vmrun-shim-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.json");
        std::fs::write(
            &config,
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#,
        )
        .unwrap();
        let spec = read_spec(&config).unwrap();
        assert_eq!(sandbox_of(&spec).as_deref(), Some("pod1"));
        std::fs::write(&config, r#"{"annotations":{}}"#).unwrap();
        assert_eq!(sandbox_of(&read_spec(&config).unwrap()), None);
        assert_eq!(read_spec(&dir.join("missing.json")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
