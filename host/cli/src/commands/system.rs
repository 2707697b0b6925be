//! `vmrun version` and `vmrun info`.

use serde_json::Value;

use super::print_text;
use crate::api::{self, Api};
use crate::error::{daemon_message, CliError, CliResult};
use crate::format::human::bytes_size;

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Renders the client part of `version`.
pub fn client_version_text(api_version: &str) -> String {
    format!(
        "Client:\n Version:           {}\n API version:       {api_version}\n OS/Arch:           {}/{}\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    )
}

/// Renders the server part of `version` from `GET /version`.
pub fn server_version_text(v: &Value) -> String {
    let mut out = String::from("\nServer:\n Engine:\n");
    out.push_str(&format!("  Version:          {}\n", text(v, "Version")));
    out.push_str(&format!(
        "  API version:      {} (minimum version {})\n",
        text(v, "ApiVersion"),
        text(v, "MinAPIVersion")
    ));
    for (label, key) in [
        ("Go version", "GoVersion"),
        ("Git commit", "GitCommit"),
        ("Built", "BuildTime"),
    ] {
        let value = text(v, key);
        if !value.is_empty() {
            out.push_str(&format!("  {:<17} {value}\n", format!("{label}:")));
        }
    }
    out.push_str(&format!(
        "  OS/Arch:          {}/{}\n",
        text(v, "Os"),
        text(v, "Arch")
    ));
    if let Some(components) = v.get("Components").and_then(Value::as_array) {
        for c in components {
            let name = text(c, "Name");
            if name == "Engine" {
                continue;
            }
            out.push_str(&format!(
                " {name}:\n  Version:          {}\n",
                text(c, "Version")
            ));
        }
    }
    out
}

/// `vmrun version`: prints the client, then the server if one answers.
pub async fn version(host: &str) -> CliResult<i32> {
    match api::connect(host, false).await {
        Ok(api) => {
            let mut negotiated = api.docker.client_version().to_string();
            let default = bollard::API_DEFAULT_VERSION.to_string();
            if negotiated != default {
                negotiated = format!("{negotiated} (downgraded from {default})");
            }
            print_text(&client_version_text(&negotiated));
            let v = api
                .get_json("/version")
                .await
                .map_err(|e| CliError::daemon(1, &e))?;
            print_text(&server_version_text(&v));
            Ok(0)
        }
        Err(e) => {
            print_text(&client_version_text(
                &bollard::API_DEFAULT_VERSION.to_string(),
            ));
            Err(e)
        }
    }
}

/// Renders `info` from `GET /info`.
pub fn info_text(v: &Value) -> String {
    let mut out = String::from("Server:\n");
    let n = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    out.push_str(&format!(" Containers: {}\n", n("Containers")));
    out.push_str(&format!("  Running: {}\n", n("ContainersRunning")));
    out.push_str(&format!("  Paused: {}\n", n("ContainersPaused")));
    out.push_str(&format!("  Stopped: {}\n", n("ContainersStopped")));
    out.push_str(&format!(" Images: {}\n", n("Images")));
    for (label, key) in [
        ("Server Version", "ServerVersion"),
        ("Storage Driver", "Driver"),
        ("Logging Driver", "LoggingDriver"),
        ("Cgroup Driver", "CgroupDriver"),
        ("Cgroup Version", "CgroupVersion"),
        ("Default Runtime", "DefaultRuntime"),
        ("Kernel Version", "KernelVersion"),
        ("Operating System", "OperatingSystem"),
        ("OSType", "OSType"),
        ("Architecture", "Architecture"),
        ("CPUs", "NCPU"),
    ] {
        let value = text(v, key);
        if !value.is_empty() {
            out.push_str(&format!(" {label}: {value}\n"));
        }
    }
    if let Some(mem) = v.get("MemTotal").and_then(Value::as_f64) {
        out.push_str(&format!(" Total Memory: {}\n", bytes_size(mem)));
    }
    for (label, key) in [
        ("Name", "Name"),
        ("ID", "ID"),
        ("Docker Root Dir", "DockerRootDir"),
    ] {
        let value = text(v, key);
        if !value.is_empty() {
            out.push_str(&format!(" {label}: {value}\n"));
        }
    }
    out
}

/// `vmrun info`.
pub async fn info(api: &Api) -> CliResult<i32> {
    let v = api
        .get_json("/info")
        .await
        .map_err(|e| CliError::new(1, daemon_message(&e)))?;
    print_text(&info_text(&v));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_and_info_text() {
        let v = json!({"Version": "0.1.0", "ApiVersion": "1.45", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
            "Components": [{"Name": "Engine", "Version": "0.1.0"}, {"Name": "runtime", "Version": "1"}]});
        let s = server_version_text(&v);
        assert!(s.contains("  API version:      1.45 (minimum version 1.24)\n"));
        assert!(s.contains(" runtime:\n  Version:          1\n"));
        assert!(client_version_text("1.45").contains(" API version:       1.45\n"));
        let i = info_text(
            &json!({"Containers": 2, "ContainersRunning": 1, "NCPU": 2, "MemTotal": 1073741824u64}),
        );
        assert!(i.contains(" Containers: 2\n  Running: 1\n"));
        assert!(i.contains(" CPUs: 2\n"));
        assert!(i.contains(" Total Memory: 1GiB\n"));
    }
}
