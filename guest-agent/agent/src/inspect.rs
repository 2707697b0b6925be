//! Read-only views of a container: cgroup figures, its processes, its log.

use std::path::Path;

use vmrun_agent_protocol::{AgentError, ContainerStats, ErrorKind, ProcessInfo, MAX_FRAME_LEN};

use crate::procs::{Entry, Kind};

fn cgroup_of(e: &Entry) -> Result<&Path, AgentError> {
    match &e.kind {
        Kind::Container { cgroups_path, .. } => Ok(cgroups_path),
        Kind::Exec { .. } => Err(AgentError::new(ErrorKind::NotFound, "not a container")),
    }
}

fn cgroup_err(id: &str, e: impl std::fmt::Display) -> AgentError {
    AgentError::new(
        ErrorKind::Conflict,
        format!("cgroup of {id}: {e} (is it running?)"),
    )
}

/// cgroup figures (v1 or v2, whichever the machine has).
pub fn stats(e: &Entry) -> Result<ContainerStats, AgentError> {
    let s = vmrun_cgroups::manager(cgroup_of(e)?)
        .and_then(|m| m.stats())
        .map_err(|x| cgroup_err(&e.id, x))?;
    Ok(ContainerStats {
        memory_usage: s.memory_usage,
        memory_max_usage: s.memory_max_usage,
        memory_limit: s.memory_limit,
        memory_cache: s.memory_cache,
        cpu_usage_ns: s.cpu_usage_ns,
        cpu_user_ns: s.cpu_user_ns,
        cpu_system_ns: s.cpu_system_ns,
        pids_current: s.pids_current,
        pids_limit: s.pids_limit,
        oom_kill_count: s.oom_kill_count,
    })
}

/// Freezes (`frozen`) or thaws the container's cgroup.
pub fn freeze(e: &Entry, frozen: bool) -> Result<(), AgentError> {
    vmrun_cgroups::manager(cgroup_of(e)?)
        .and_then(|m| if frozen { m.freeze() } else { m.thaw() })
        .map_err(|x| cgroup_err(&e.id, x))
}

/// Applies `resources` (an OCI `linux.resources` object) to the container's cgroup.
pub fn update_resources(e: &Entry, resources: serde_json::Value) -> Result<(), AgentError> {
    let resources: oci_spec::runtime::LinuxResources =
        serde_json::from_value(resources).map_err(|x| {
            AgentError::new(
                vmrun_agent_protocol::ErrorKind::BadRequest,
                format!("the resources: {x}"),
            )
        })?;
    vmrun_cgroups::manager(cgroup_of(e)?)
        .and_then(|m| m.set(&resources))
        .map_err(|x| cgroup_err(&e.id, x))
}

/// The container's processes (members of its cgroup), by pid.
pub fn top(e: &Entry) -> Result<Vec<ProcessInfo>, AgentError> {
    let pids = vmrun_cgroups::manager(cgroup_of(e)?)
        .and_then(|m| m.pids())
        .map_err(|x| cgroup_err(&e.id, x))?;
    let mut out: Vec<ProcessInfo> = pids
        .into_iter()
        .filter_map(|p| process_info(p.as_raw()))
        .collect();
    out.sort_by_key(|p| p.pid);
    Ok(out)
}

/// Reads `/proc/<pid>`; `None` when the process is gone.
fn process_info(pid: i32) -> Option<ProcessInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let ppid = stat
        .get(close + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cmd = if args.is_empty() {
        format!("[{comm}]")
    } else {
        args.join(" ")
    };
    Some(ProcessInfo {
        pid,
        ppid,
        uid,
        cmd,
    })
}

/// `pid` and its descendants with their state and kernel wait channel, for messages about
/// a process that hangs.
pub fn describe_tree(pid: i32) -> String {
    let mut all: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for p in entries.flatten() {
            if let Some(n) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                if let Some(info) = process_info(n) {
                    all.push((info.pid, info.ppid));
                }
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    tree.iter()
        .map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let state = stat
                .rfind(')')
                .and_then(|c| stat.get(c + 2..c + 3))
                .unwrap_or("?")
                .to_string();
            let wchan = std::fs::read_to_string(format!("/proc/{p}/wchan")).unwrap_or_default();
            let cmd = process_info(*p).map(|i| i.cmd).unwrap_or_default();
            format!("pid {p} [{cmd}] state {state} wchan {wchan}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The container's log path.
pub fn log_path(e: &Entry) -> Result<&Path, AgentError> {
    match &e.kind {
        Kind::Container { log_path, .. } => Ok(log_path),
        Kind::Exec { .. } => Err(AgentError::new(
            ErrorKind::NotFound,
            "execs keep no log: attach to them",
        )),
    }
}

/// The whole log, if it fits in a reply.
pub fn logs(e: &Entry) -> Result<String, AgentError> {
    let path = log_path(e)?;
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if len as usize > MAX_FRAME_LEN / 2 {
        return Err(AgentError::new(
            ErrorKind::TooLarge,
            format!("the log is {len} bytes: read it through a logs stream"),
        ));
    }
    match std::fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(x) if x.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(x) => Err(AgentError::new(
            ErrorKind::Internal,
            format!("reading {}: {x}", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_our_own_process() {
        let me = super::process_info(std::process::id() as i32).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(me.ppid > 0);
        assert!(!me.cmd.is_empty());
        assert!(super::process_info(-5).is_none());
    }
}
