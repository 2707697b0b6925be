//! Waiting for a process in the agent: its exit recorded and published as `/tasks/exit`,
//! after `/tasks/oom` when the cgroup's OOM killer ended it (the agent's `oom_killed`).

use std::sync::Arc;

use containerd_shim::protos::events::task::{TaskExit, TaskOOM};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics;

use crate::events::{timestamp, Events};
use crate::process::Process;
use crate::runner::Runner;

/// Waits for `process` (exec `exec_id`, empty for the init) of task `container` in the
/// guest, records its exit and publishes it through `events`.
pub fn watch(
    events: Arc<Events>,
    sandbox: Arc<Runner>,
    container: String,
    exec_id: String,
    process: Arc<Process>,
) {
    tokio::spawn(async move {
        let (code, oom) = match sandbox
            .call_until("waiting", None, sandbox.agent().wait(&process.agent_id))
            .await
        {
            Ok(info) => (
                u32::try_from(info.exit_code).unwrap_or(255),
                info.oom_killed,
            ),
            Err(e) => {
                log::warn!("{}: {e:#}", process.agent_id);
                (255, false)
            }
        };
        if oom {
            let event = TaskOOM {
                container_id: container.clone(),
                ..Default::default()
            };
            events
                .publish(topics::TASK_OOM_EVENT_TOPIC, Box::new(event))
                .await;
        }
        process.exited(code).await;
        let (code, at) = process.wait().await;
        let exec_id = if exec_id.is_empty() {
            container.clone()
        } else {
            exec_id
        };
        let event = TaskExit {
            container_id: container,
            id: exec_id,
            pid: process.pid(),
            exit_status: code,
            exited_at: MessageField::some(timestamp(at)),
            ..Default::default()
        };
        events
            .publish(topics::TASK_EXIT_EVENT_TOPIC, Box::new(event))
            .await;
    });
}
