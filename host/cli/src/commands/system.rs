//! `vmrun version` and `vmrun info`.

use serde_json::{json, Value};

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

/// Renders the server part of `version` from `GET /version`, laid out like
/// docker's template: the platform name, then each component (the Engine's
/// details from `Components`, else from the top-level fields).
pub fn server_version_text(v: &Value) -> String {
    let platform = v
        .get("Platform")
        .map(|p| text(p, "Name"))
        .unwrap_or_default();
    let mut out = if platform.is_empty() {
        String::from("\nServer:\n")
    } else {
        format!("\nServer: {platform}\n")
    };
    let fallback = [json!({"Name": "Engine", "Version": v.get("Version"), "Details": v})];
    let components = match v.get("Components").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => c.as_slice(),
        _ => &fallback,
    };
    for c in components {
        let name = text(c, "Name");
        let details = c.get("Details").cloned().unwrap_or(Value::Null);
        out.push_str(&format!(" {name}:\n"));
        out.push_str(&format!("  Version:          {}\n", text(c, "Version")));
        if name == "Engine" {
            // docker prints these even when the engine sends them empty.
            let d = |key: &str| text(&details, key);
            out.push_str(&format!(
                "  API version:      {} (minimum version {})\n",
                d("ApiVersion"),
                d("MinAPIVersion")
            ));
            out.push_str(&format!("  Go version:       {}\n", d("GoVersion")));
            out.push_str(&format!("  Git commit:       {}\n", d("GitCommit")));
            out.push_str(&format!("  Built:            {}\n", d("BuildTime")));
            out.push_str(&format!("  OS/Arch:          {}/{}\n", d("Os"), d("Arch")));
            out.push_str(&format!("  Experimental:     {}\n", d("Experimental")));
        } else if let Some(map) = details.as_object() {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                let pad = 16usize.saturating_sub(key.len());
                out.push_str(&format!(
                    "  {key}:{} {}\n",
                    " ".repeat(pad),
                    text(&details, key)
                ));
            }
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

/// Renders the client part of `info`.
pub fn client_info_text(debug: bool) -> String {
    format!(
        "Client:\n Version:    {}\n Debug Mode: {debug}\n\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Lines of `info`, as Go's `fmt.Fprintln(label, value)` writes them.
struct InfoLines(String);

impl InfoLines {
    fn kv(&mut self, label: &str, value: impl std::fmt::Display) {
        self.0.push_str(&format!("{label} {value}\n"));
    }

    fn kv_non_empty(&mut self, label: &str, value: String) {
        if !value.is_empty() {
            self.kv(label, value);
        }
    }

    fn line(&mut self, text: &str) {
        self.0.push_str(text);
        self.0.push('\n');
    }
}

fn strings(x: Option<&Value>) -> Vec<String> {
    x.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| {
            s.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| s.to_string())
        })
        .collect()
}

/// vmrund's `VmBackend` of `GET /info` in one line: `qemu (auto; KVM: pvm: …)`,
/// or `none (why)`.
fn vm_backend_text(vm: &Value) -> String {
    let choice = text(vm, "Choice");
    let kvm = text(vm, "Kvm");
    match vm.get("Backend").and_then(Value::as_str) {
        Some(backend) => match vm.get("Accelerator").and_then(Value::as_str) {
            Some(accel) => format!("{backend} ({choice}; accelerator {accel}; KVM: {kvm})"),
            None => format!("{backend} ({choice}; KVM: {kvm})"),
        },
        None => format!("none ({})", text(vm, "Unavailable")),
    }
}

/// Renders the server part of `info` from `GET /info`, in the order and
/// with the labels of docker's `prettyPrintServerInfo`.
pub fn info_text(v: &Value) -> String {
    let n = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    let b = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let mut out = InfoLines(String::from("Server:\n"));
    out.kv(" Containers:", n("Containers"));
    out.kv("  Running:", n("ContainersRunning"));
    out.kv("  Paused:", n("ContainersPaused"));
    out.kv("  Stopped:", n("ContainersStopped"));
    out.kv(" Images:", n("Images"));
    out.kv_non_empty(" Server Version:", text(v, "ServerVersion"));
    out.kv(" Storage Driver:", text(v, "Driver"));
    for pair in v
        .get("DriverStatus")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let [key, value] = strings(Some(pair)).as_slice() {
            out.kv(&format!("  {key}:"), value);
        }
    }
    out.kv_non_empty(" Logging Driver:", text(v, "LoggingDriver"));
    out.kv_non_empty(" Cgroup Driver:", text(v, "CgroupDriver"));
    out.kv_non_empty(" Cgroup Version:", text(v, "CgroupVersion"));
    out.line(" Plugins:");
    let plugins = v.get("Plugins");
    for kind in ["Volume", "Network", "Log"] {
        let names = strings(plugins.and_then(|p| p.get(kind))).join(" ");
        out.kv(&format!("  {kind}:"), names);
    }
    let swarm = v
        .get("Swarm")
        .map(|s| text(s, "LocalNodeState"))
        .unwrap_or_default();
    out.kv(" Swarm:", swarm);
    if let Some(runtimes) = v
        .get("Runtimes")
        .and_then(Value::as_object)
        .filter(|r| !r.is_empty())
    {
        let mut names: Vec<&str> = runtimes.keys().map(String::as_str).collect();
        names.sort_unstable();
        out.kv(" Runtimes:", names.join(" "));
        out.kv(" Default Runtime:", text(v, "DefaultRuntime"));
    }
    if let Some(vm) = v.get("VmBackend").filter(|vm| vm.is_object()) {
        out.kv(" VM Backend:", vm_backend_text(vm));
    }
    out.kv_non_empty(" Mode:", text(v, "VmrunMode"));
    if text(v, "OSType") == "linux" {
        out.kv(" Init Binary:", text(v, "InitBinary"));
        for (name, key) in [
            ("containerd", "ContainerdCommit"),
            ("runc", "RuncCommit"),
            ("init", "InitCommit"),
        ] {
            let id = v.get(key).map(|c| text(c, "ID")).unwrap_or_default();
            out.kv(&format!(" {name} version:"), id);
        }
        let options = strings(v.get("SecurityOptions"));
        if !options.is_empty() {
            out.line(" Security Options:");
            for option in options {
                let mut name = String::new();
                let mut profile = None;
                for kv in option.split(',') {
                    match kv.split_once('=') {
                        Some(("name", n)) => name = n.to_string(),
                        Some(("profile", p)) => profile = Some(p.to_string()),
                        _ => {}
                    }
                }
                out.line(&format!("  {name}"));
                if let Some(p) = profile {
                    out.kv("   Profile:", p);
                }
            }
        }
    }
    out.kv_non_empty(" Kernel Version:", text(v, "KernelVersion"));
    out.kv_non_empty(" Operating System:", text(v, "OperatingSystem"));
    out.kv_non_empty(" OSType:", text(v, "OSType"));
    out.kv_non_empty(" Architecture:", text(v, "Architecture"));
    out.kv(" CPUs:", n("NCPU"));
    out.kv(" Total Memory:", bytes_size(n("MemTotal") as f64));
    out.kv_non_empty(" Name:", text(v, "Name"));
    out.kv_non_empty(" ID:", text(v, "ID"));
    out.kv(" Docker Root Dir:", text(v, "DockerRootDir"));
    out.kv(" Debug Mode:", b("Debug"));
    out.kv_non_empty(" HTTP Proxy:", text(v, "HttpProxy"));
    out.kv_non_empty(" HTTPS Proxy:", text(v, "HttpsProxy"));
    out.kv_non_empty(" No Proxy:", text(v, "NoProxy"));
    let labels = strings(v.get("Labels"));
    if !labels.is_empty() {
        out.line(" Labels:");
        for l in labels {
            out.line(&format!("  {l}"));
        }
    }
    out.kv(" Experimental:", b("ExperimentalBuild"));
    out.kv(" Live Restore Enabled:", b("LiveRestoreEnabled"));
    out.line("");
    out.0
}

/// `vmrun info`: the client, the server, then the server's warnings on stderr.
pub async fn info(api: &Api, debug: bool) -> CliResult<i32> {
    print_text(&client_info_text(debug));
    let v = api
        .get_json("/info")
        .await
        .map_err(|e| CliError::new(1, daemon_message(&e)))?;
    print_text(&info_text(&v));
    for warning in v
        .get("Warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(w) = warning.as_str() {
            eprintln!("{w}");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_and_info_text() {
        let v = json!({"Version": "0.1.0", "ApiVersion": "1.45", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
            "Platform": {"Name": "vmrun"},
            "Components": [{"Name": "Engine", "Version": "0.1.0", "Details": {"ApiVersion": "1.45",
                "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64", "Experimental": "false"}},
                {"Name": "runtime", "Version": "1", "Details": {"GitCommit": "abc"}}]});
        let s = server_version_text(&v);
        assert_eq!(
            s,
            "\nServer: vmrun\n Engine:\n  Version:          0.1.0\n  API version:      1.45 (minimum version 1.24)\n  Go version:       \n  Git commit:       \n  Built:            \n  OS/Arch:          linux/amd64\n  Experimental:     false\n runtime:\n  Version:          1\n  GitCommit:        abc\n"
        );
        let old = server_version_text(
            &json!({"Version": "1", "ApiVersion": "1.41", "Os": "linux", "Arch": "amd64"}),
        );
        assert!(old.starts_with("\nServer:\n Engine:\n  Version:          1\n  API version:      1.41 (minimum version )\n"));
        assert!(client_version_text("1.45").contains(" API version:       1.45\n"));
        let i = info_text(
            &json!({"Containers": 2, "ContainersRunning": 1, "NCPU": 2, "MemTotal": 1073741824u64}),
        );
        assert!(i.contains(" Containers: 2\n  Running: 1\n"));
        assert!(i.contains(" CPUs: 2\n"));
        assert!(i.contains(" Total Memory: 1GiB\n"));
        assert!(!i.contains("VM Backend"), "dockerd has none: {i}");
        let vm = info_text(
            &json!({"VmBackend": {"Choice": "auto", "Backend": "qemu", "Kvm": "pvm: PVM here", "Unavailable": null}}),
        );
        assert!(
            vm.contains(" VM Backend: qemu (auto; KVM: pvm: PVM here)\n"),
            "{vm}"
        );
        let named = info_text(
            &json!({"VmBackend": {"Choice": "auto", "Backend": "qemu", "Accelerator": "tcg", "Kvm": "pvm: PVM here"}}),
        );
        assert!(
            named.contains(" VM Backend: qemu (auto; accelerator tcg; KVM: pvm: PVM here)\n"),
            "{named}"
        );
        let none = info_text(
            &json!({"VmBackend": {"Choice": "auto", "Backend": null, "Kvm": "unusable: no /dev/kvm", "Unavailable": "neither backend works"}}),
        );
        assert!(
            none.contains(" VM Backend: none (neither backend works)\n"),
            "{none}"
        );
    }
}
