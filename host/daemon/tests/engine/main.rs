//! The engine in-process, over a [`fake::FakeBackend`]: lifecycle, exec, names, events
//! and a daemon restart, without root.

mod fake;
mod health;
mod lifecycle;
mod networks;
mod requests;
mod restart;
mod restart_policy;
mod shared_vm;
mod stdio;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bollard_stubs::models::{ContainerCreateBody, HostConfig, PortBinding};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;
use vmrun_daemon::backend::{AttachOptions, BackendError, Backends, ExecSpec, Isolation};
use vmrun_daemon::engine::{CreateRequest, Engine, EngineError, EngineParts, Event, WaitCondition};
use vmrun_daemon::state::Status;
use vmrun_daemon::vm::VmSupport;
use vmrun_daemon::DaemonConfig;
use vmrun_images::{ImageStore, ImportOptions};

use fake::FakeBackend;

/// A data root with one image, `app:latest` (`CMD ["/bin/app", "serve"]`, `ENV A=1`).
fn data_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let images = ImageStore::open(&root.path().join("data/images")).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let body = b"#!/bin/sh\n";
    header.set_size(body.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "bin/app", &body[..]).unwrap();
    let data = tar.into_inner().unwrap();
    images
        .import(
            &mut data.as_slice(),
            &ImportOptions {
                reference: Some("app:latest".into()),
                message: None,
                changes: vec![r#"CMD ["/bin/app", "serve"]"#.into(), "ENV A=1".into()],
                platform: None,
            },
        )
        .unwrap();
    root
}

/// An engine over `root` whose native containers run in `fake`.
fn engine(root: &Path, fake: &Arc<FakeBackend>) -> Arc<Engine> {
    let backends = Backends::new()
        .with(Isolation::Native, fake.clone())
        .without(Isolation::Vm, "not in these tests");
    engine_with(root, backends)
}

/// An engine over `root` with `backends`.
fn engine_with(root: &Path, backends: Backends) -> Arc<Engine> {
    engine_in_mode(root, backends, DaemonConfig::with_defaults(), None)
}

/// An engine over `root` with `backends`, `config` (paths replaced) and a shared VM.
fn engine_in_mode(
    root: &Path,
    backends: Backends,
    mut config: DaemonConfig,
    shared_vm: Option<Arc<dyn vmrun_daemon::backend::SharedVmControl>>,
) -> Arc<Engine> {
    config.data_root = root.join("data");
    config.exec_root = root.join("run");
    config.socket = root.join("d.sock");
    let images = Arc::new(ImageStore::open(&config.data_root.join("images")).unwrap());
    let caps = vmrun_vm::HostCaps {
        kvm: vmrun_vm::KvmStatus::Unusable("tests".into()),
        vmm_binary: None,
        qemu: None,
        vhost_device_vsock: None,
    };
    let vm = VmSupport::from_caps(vmrun_vm::BackendChoice::Auto, &caps).unwrap();
    Arc::new(
        Engine::new(EngineParts {
            config,
            images,
            network: None,
            vm,
            backends,
            shared_vm,
        })
        .unwrap(),
    )
}

fn setup() -> (tempfile::TempDir, Arc<FakeBackend>, Arc<Engine>) {
    let root = data_root();
    let fake = FakeBackend::new(&root.path().join("fake"));
    let engine = engine(root.path(), &fake);
    (root, fake, engine)
}

fn body(host_config: HostConfig) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some("app".into()),
        host_config: Some(host_config),
        ..Default::default()
    }
}

async fn create(
    engine: &Engine,
    name: &str,
    b: ContainerCreateBody,
) -> Result<String, EngineError> {
    engine
        .create_container(CreateRequest {
            name: Some(name.into()),
            body: b,
            isolation: None,
        })
        .await
        .map(|(id, _)| id)
}

async fn wait_exit(engine: &Engine, id: &str) -> i32 {
    let fut = engine
        .wait_container(id, WaitCondition::NotRunning)
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("the container exits")
        .unwrap()
}

/// Every event received so far.
fn drain(rx: &mut broadcast::Receiver<Event>) -> Vec<Event> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// The events of container `id`, as `action` or `action:exitCode`.
fn of(events: &[Event], id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|ev| ev.typ == "container" && ev.actor.id == id)
        .map(|ev| match ev.attr("exitCode") {
            Some(c) => format!("{}:{c}", ev.action),
            None => ev.action.clone(),
        })
        .collect()
}

/// The events of container `id` received so far (others are dropped).
fn actions(rx: &mut broadcast::Receiver<Event>, id: &str) -> Vec<String> {
    of(&drain(rx), id)
}

/// Until `f` holds (the engine records exits in a task of its own).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}
