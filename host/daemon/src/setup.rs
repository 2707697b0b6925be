//! Start-up: opens the daemon's stores and network, registers the container backends
//! this host offers, and builds the [`Engine`] over them.

use std::sync::Arc;

use anyhow::Context;
use vmrun_images::ImageStore;
use vmrun_network::NetworkManager;

use crate::backend;
use crate::config::DaemonConfig;
use crate::engine::{Engine, EngineParts};
use crate::vm::VmSupport;

/// The engine of a daemon with `config`, before [`Engine::recover`].
pub async fn open_engine(config: DaemonConfig) -> anyhow::Result<Engine> {
    // First: a VM backend the host cannot run stops the daemon before it touches anything.
    let vm =
        VmSupport::detect(config.vm_backend, config.vmm_binary.clone()).context("--vm-backend")?;
    for dir in [&config.data_root, &config.exec_root] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::builder::remove_leftovers(&config.data_root);
    let images =
        ImageStore::open(&config.data_root.join("images")).context("opening the image store")?;
    let mut net_config = vmrun_network::ManagerConfig::new(
        &config.data_root.join("network"),
        &config.exec_root.join("netns"),
    );
    if let Some(b) = &config.bridge {
        net_config.default_bridge = b.clone();
    }
    net_config.default_subnet = config.bridge_subnet;
    let network = tokio::task::spawn_blocking(move || NetworkManager::open_with(net_config))
        .await
        .context("network setup panicked")?
        .context("opening the network manager")?;
    let network = Arc::new(network);
    let (backends, shared_vm) = backend::host_backends(&config, network.clone(), &vm);
    if config.mode == crate::config::DaemonMode::Vm {
        // `--mode vm` is an explicit choice: a host that cannot run the VM says why now.
        if let Err(e) = backends.get(crate::backend::Isolation::SharedVm) {
            anyhow::bail!("--mode vm: {}", e.reason);
        }
    }
    let engine = Engine::new(EngineParts {
        config,
        images: Arc::new(images),
        network: Some(network),
        vm,
        backends,
        shared_vm,
    })
    .context("opening the container state")?;
    Ok(engine)
}
