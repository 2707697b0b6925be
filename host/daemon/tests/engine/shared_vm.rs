//! `--mode vm`: containers that ask for nothing go to the shared VM's backend, `inspect`
//! says so, and stopping the VM stops its containers first.

use std::sync::Mutex;

use async_trait::async_trait;
use vmrun_daemon::backend::{SharedVmControl, SharedVmStatus};
use vmrun_daemon::config::DaemonMode;

use super::*;

/// A shared VM that records what it was asked, and what ran when it was stopped.
#[derive(Default)]
struct FakeSharedVm {
    running: Mutex<bool>,
    stopped_with_running: Mutex<Vec<usize>>,
    engine: Mutex<Option<std::sync::Weak<Engine>>>,
}

impl FakeSharedVm {
    fn status_now(&self) -> SharedVmStatus {
        let running = *self.running.lock().unwrap();
        SharedVmStatus {
            state: if running { "running" } else { "stopped" }.into(),
            backend: "fake".into(),
            accelerator: "none".into(),
            cpus: 2,
            memory_mib: 1024,
            disk_gib: 64,
            data_disk: "/fake".into(),
            uptime_seconds: 0,
            containers: 0,
            pid: 0,
            kernel: String::new(),
            agent_rss_kib: 0,
            last_exit: None,
        }
    }
}

#[async_trait]
impl SharedVmControl for FakeSharedVm {
    async fn status(&self) -> SharedVmStatus {
        self.status_now()
    }
    async fn start(&self) -> Result<SharedVmStatus, BackendError> {
        *self.running.lock().unwrap() = true;
        Ok(self.status_now())
    }
    async fn remove_volume(&self, _name: &str) -> Result<(), BackendError> {
        Ok(())
    }
    async fn prune_layers(&self) {}
    async fn stop(&self) -> bool {
        let engine = self
            .engine
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|w| w.upgrade());
        if let Some(engine) = engine {
            let running = engine
                .store
                .list()
                .iter()
                .filter(|r| r.is_running())
                .count();
            self.stopped_with_running.lock().unwrap().push(running);
        }
        std::mem::replace(&mut *self.running.lock().unwrap(), false)
    }
}

#[tokio::test]
async fn vm_mode_puts_containers_in_the_shared_vm_and_stops_them_with_it() {
    let root = data_root();
    let fake = FakeBackend::new(&root.path().join("fake"));
    let backends = Backends::new()
        .with(Isolation::SharedVm, fake.clone())
        .without(Isolation::Native, "not in this test")
        .without(Isolation::Vm, "not in this test");
    let mut config = DaemonConfig::with_defaults();
    config.mode = DaemonMode::Vm;
    let vm = Arc::new(FakeSharedVm::default());
    let engine = engine_in_mode(root.path(), backends, config, Some(vm.clone()));
    *vm.engine.lock().unwrap() = Some(Arc::downgrade(&engine));

    let id = create(&engine, "web", body(HostConfig::default()))
        .await
        .unwrap();
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.isolation, Isolation::SharedVm);
    assert_eq!(rec.host_config.isolation.as_deref(), Some("shared-vm"));
    // Asking for the host's kernel in VM mode names the missing backend.
    let e = engine
        .create_container(CreateRequest {
            name: Some("other".into()),
            body: body(HostConfig::default()),
            isolation: Some("process".into()),
        })
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("isolation native is not available"),
        "{e}"
    );

    assert_eq!(engine.shared_vm_start().await.unwrap().state, "running");
    assert!(engine.start_container("web").await.unwrap());
    assert!(engine.shared_vm_stop(Some(1)).await.unwrap());
    assert_eq!(
        *vm.stopped_with_running.lock().unwrap(),
        [0],
        "the VM stops after its containers"
    );
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.state.status, Status::Exited);
    assert_eq!(rec.state.exit_code, 128 + libc::SIGTERM);
    assert!(
        !engine.shared_vm_stop(None).await.unwrap(),
        "not running: false"
    );
}

#[tokio::test]
async fn a_daemon_without_a_shared_vm_says_why() {
    let (_root, _fake, engine) = setup();
    let e = engine.shared_vm_status().await.unwrap_err();
    assert!(matches!(e, EngineError::BadRequest(_)), "{e:?}");
    assert!(e.to_string().contains("shared-vm"), "{e}");
}
