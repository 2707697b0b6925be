//! The flags shared by `run` and `create`, and their translation into the
//! API's container-create body (`Config` + `HostConfig`).

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigIsolationEnum, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};

use super::env::{parse_env, parse_env_file_text, parse_labels};
use super::ports::{parse_expose, parse_publish};
use super::size::{parse_nano_cpus, parse_ram_in_bytes};
use super::volumes::{parse_volume, VolumeSpec};
use super::OptError;

/// Flags of `vmrun run` and `vmrun create`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ContainerFlags {
    /// Run the container in the background and print its ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro|rw]")]
    pub volume: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports (in a VM, also every port a process in
    /// the container listens on, forwarded as it appears)
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long = "expose", value_name = "PORT[/PROTO]")]
    pub expose: Vec<String>,
    /// Add a custom host-to-IP mapping (HOST:IP; IP may be host-gateway)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Memory limit (e.g. 512m, 1g)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// Tune container pids limit (-1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Connect a container to a network (bridge, host, none or a network name)
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Container host name
    #[arg(long, short = 'h')]
    pub hostname: Option<String>,
    /// Print help (`-h` is `--hostname`, as in docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Restart policy to apply when a container exits (no, always, unless-stopped, on-failure[:N])
    #[arg(long)]
    pub restart: Option<String>,
    /// Where the container runs: default (the daemon's mode), process (the host's
    /// kernel), vm (a microVM of its own; also hyperv) or shared-vm (the daemon's shared VM)
    #[arg(long)]
    pub isolation: Option<String>,
    /// Runtime to use for this container (vmrun, runc, vmrun-vm or vm, vmrun-shared-vm)
    #[arg(long)]
    pub runtime: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label", value_name = "K=V")]
    pub label: Vec<String>,
    /// Health check flags
    #[command(flatten)]
    pub health: super::health::HealthFlags,
    /// The image, then the command and its arguments
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub image_and_command: Vec<String>,
}

/// What `create` sends: the container name and the create body.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The `name` query parameter.
    pub name: Option<String>,
    /// The image reference as given.
    pub image: String,
    /// The JSON body.
    pub body: ContainerCreateBody,
}

impl ContainerFlags {
    /// The image reference (first positional).
    pub fn image(&self) -> &str {
        self.image_and_command
            .first()
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The command and arguments after the image.
    pub fn command(&self) -> &[String] {
        self.image_and_command.get(1..).unwrap_or(&[])
    }
}

/// Parses `--restart`: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
pub fn parse_restart(value: &str) -> Result<RestartPolicy, String> {
    let (name, count) = match value.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (value, None),
    };
    let name_enum = match name {
        "" | "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        other => return Err(format!("invalid restart policy '{other}'")),
    };
    let maximum_retry_count =
        match count {
            None => None,
            Some(_) if name_enum != RestartPolicyNameEnum::ON_FAILURE => {
                return Err(format!(
                    "maximum retry count cannot be used with restart policy '{name}'"
                ))
            }
            Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                format!("maximum retry count must be a non-negative integer: {c}")
            })?),
        };
    Ok(RestartPolicy {
        name: Some(name_enum),
        maximum_retry_count,
    })
}

/// `--isolation` and `--runtime` as the API's `HostConfig.Isolation` and `Runtime`. The
/// API model knows only docker's isolation names, so the VM kinds travel as vmrund's
/// runtime names (which the daemon records as the isolation).
pub fn parse_isolation(
    isolation: Option<&str>,
    runtime: Option<&str>,
) -> Result<(Option<HostConfigIsolationEnum>, Option<String>), OptError> {
    let runtime = runtime.map(str::to_string);
    let Some(value) = isolation else {
        return Ok((None, runtime));
    };
    let vm_runtime = |name: &str| match &runtime {
        None => Ok((None, Some(name.to_string()))),
        Some(r) if r == name => Ok((None, runtime.clone())),
        Some(r) => Err(OptError::new(
            "--isolation",
            value,
            format!("conflicts with --runtime {r}"),
        )),
    };
    match value {
        "" | "default" => Ok((Some(HostConfigIsolationEnum::DEFAULT), runtime)),
        "process" | "native" => Ok((Some(HostConfigIsolationEnum::PROCESS), runtime)),
        "vm" | "hyperv" => vm_runtime("vmrun-vm"),
        "shared-vm" => vm_runtime("vmrun-shared-vm"),
        other => Err(OptError::new(
            "--isolation",
            other,
            "expected default, process, vm (or hyperv) or shared-vm",
        )),
    }
}

/// Translates the flags into a create request. `lookup` reads the CLI's own
/// environment (for `-e NAME` without a value) and `read_file` reads env
/// files; both are parameters so that this stays a pure function in tests.
pub fn build_create_request(
    flags: &ContainerFlags,
    lookup: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<CreateRequest, OptError> {
    let image = flags.image().to_string();
    if image.is_empty() {
        return Err(OptError::new("IMAGE", "", "an image name is required"));
    }

    let mut env = Vec::new();
    for file in &flags.env_file {
        let text = read_file(file).map_err(|e| OptError::new("--env-file", file, e.to_string()))?;
        env.extend(
            parse_env_file_text(&text, lookup).map_err(|e| OptError::new("--env-file", file, e))?,
        );
    }
    for value in &flags.env {
        env.push(parse_env(value, lookup).map_err(|e| OptError::new("-e, --env", value, e))?);
    }

    let (mut exposed, bindings) = parse_publish(&flags.publish)
        .map_err(|(spec, e)| OptError::new("-p, --publish", &spec, e))?;
    for spec in &flags.expose {
        for port in parse_expose(spec).map_err(|e| OptError::new("--expose", spec, e))? {
            if !exposed.contains(&port) {
                exposed.push(port);
            }
        }
    }
    let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = bindings
        .into_iter()
        .map(|(port, maps)| {
            let list = maps
                .into_iter()
                .map(|m| PortBinding {
                    host_ip: Some(m.host_ip),
                    host_port: Some(m.host_port),
                })
                .collect();
            (port, Some(list))
        })
        .collect();

    let mut binds = Vec::new();
    let mut anonymous = Vec::new();
    for value in &flags.volume {
        match parse_volume(value).map_err(|e| OptError::new("-v, --volume", value, e))? {
            VolumeSpec::Anonymous { target } => anonymous.push(target),
            spec => binds.extend(spec.bind_string()),
        }
    }

    let memory = flags
        .memory
        .as_deref()
        .map(|m| parse_ram_in_bytes(m).map_err(|e| OptError::new("-m, --memory", m, e)))
        .transpose()?;
    let nano_cpus = flags
        .cpus
        .as_deref()
        .map(|c| parse_nano_cpus(c).map_err(|e| OptError::new("--cpus", c, e)))
        .transpose()?;
    let labels = parse_labels(&flags.label)
        .map_err(|e| OptError::new("-l, --label", &flags.label.join(","), e))?;
    let restart_policy = flags
        .restart
        .as_deref()
        .map(|r| parse_restart(r).map_err(|e| OptError::new("--restart", r, e)))
        .transpose()?;
    if flags.rm {
        if let Some(RestartPolicy { name: Some(n), .. }) = &restart_policy {
            if *n != RestartPolicyNameEnum::NO {
                return Err(OptError::new(
                    "--restart",
                    flags.restart.as_deref().unwrap_or(""),
                    "conflicting options: --restart and --rm",
                ));
            }
        }
    }
    if let Some(name) = &flags.name {
        let valid = name.trim_start_matches('/');
        let mut chars = valid.chars();
        let ok = valid.len() >= 2
            && matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return Err(OptError::new(
                "--name",
                name,
                "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            ));
        }
    }

    let (isolation, runtime) =
        parse_isolation(flags.isolation.as_deref(), flags.runtime.as_deref())?;
    let attach = !flags.detach;
    let host_config = HostConfig {
        isolation,
        runtime,
        binds: (!binds.is_empty()).then_some(binds),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        publish_all_ports: flags.publish_all.then_some(true),
        extra_hosts: (!flags.add_host.is_empty()).then(|| flags.add_host.clone()),
        memory,
        nano_cpus,
        pids_limit: flags.pids_limit,
        network_mode: Some(
            flags
                .network
                .clone()
                .unwrap_or_else(|| "default".to_string()),
        ),
        auto_remove: Some(flags.rm),
        restart_policy,
        ..Default::default()
    };
    let command = flags.command();
    let body = ContainerCreateBody {
        hostname: flags.hostname.clone(),
        user: flags.user.clone(),
        attach_stdin: Some(flags.interactive && attach),
        attach_stdout: Some(attach),
        attach_stderr: Some(attach),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: Some(flags.tty),
        open_stdin: Some(flags.interactive),
        stdin_once: Some(flags.interactive && attach),
        env: (!env.is_empty()).then_some(env),
        cmd: (!command.is_empty()).then(|| command.to_vec()),
        image: Some(image.clone()),
        volumes: (!anonymous.is_empty()).then_some(anonymous),
        working_dir: flags.workdir.clone(),
        entrypoint: flags.entrypoint.clone().map(|e| vec![e]),
        labels: (!labels.is_empty()).then_some(labels),
        host_config: Some(host_config),
        networking_config: network_aliases(flags),
        healthcheck: flags.health.config()?,
        ..Default::default()
    };
    Ok(CreateRequest {
        name: flags.name.clone(),
        image,
        body,
    })
}

/// `--network-alias`: the aliases on the container's network (a user network).
fn network_aliases(flags: &ContainerFlags) -> Option<bollard::models::NetworkingConfig> {
    if flags.network_alias.is_empty() {
        return None;
    }
    let network = flags.network.clone()?;
    let endpoint = bollard::models::EndpointSettings {
        aliases: Some(flags.network_alias.clone()),
        ..Default::default()
    };
    Some(bollard::models::NetworkingConfig {
        endpoints_config: Some([(network, endpoint)].into_iter().collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> ContainerFlags {
        use clap::Parser;
        #[derive(clap::Parser)]
        #[command(disable_help_flag = true)]
        struct Wrapper {
            #[command(flatten)]
            flags: ContainerFlags,
        }
        let mut argv = vec!["run"];
        argv.extend_from_slice(args);
        Wrapper::try_parse_from(argv).unwrap().flags
    }

    fn build(args: &[&str]) -> Result<CreateRequest, OptError> {
        build_create_request(
            &flags(args),
            &|k| (k == "FROM_HOST").then(|| "yes".to_string()),
            &|path| {
                if path == "/env.list" {
                    Ok("A=from-file\n# c\nB=2\n".to_string())
                } else {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "No such file or directory",
                    ))
                }
            },
        )
    }

    #[test]
    fn command_after_image_keeps_its_flags() {
        let f = flags(&["--rm", "-it", "busybox", "ls", "-l", "-d"]);
        assert!(f.rm && f.interactive && f.tty && !f.detach);
        assert_eq!(f.image(), "busybox");
        assert_eq!(f.command(), ["ls", "-l", "-d"]);
    }

    #[test]
    fn full_translation() {
        let req = build(&[
            "-d",
            "--name",
            "web",
            "-e",
            "X=1",
            "-e",
            "FROM_HOST",
            "--env-file",
            "/env.list",
            "-p",
            "8080:80",
            "-v",
            "/srv:/data:ro",
            "-v",
            "vol:/v",
            "-v",
            "/anon",
            "--memory",
            "512m",
            "--cpus",
            "1.5",
            "--pids-limit",
            "64",
            "-w",
            "/tmp",
            "-u",
            "1000",
            "--network",
            "host",
            "--hostname",
            "h1",
            "--entrypoint",
            "/bin/sh",
            "--restart",
            "on-failure:3",
            "--label",
            "a=b",
            "busybox",
            "-c",
            "echo hi",
        ])
        .unwrap();
        assert_eq!(req.name.as_deref(), Some("web"));
        let b = &req.body;
        assert_eq!(b.image.as_deref(), Some("busybox"));
        assert_eq!(b.cmd, Some(vec!["-c".to_string(), "echo hi".to_string()]));
        assert_eq!(b.entrypoint, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(
            b.env,
            Some(vec![
                "A=from-file".into(),
                "B=2".into(),
                "X=1".into(),
                "FROM_HOST=yes".into()
            ])
        );
        assert_eq!(b.exposed_ports, Some(vec!["80/tcp".to_string()]));
        assert_eq!(b.volumes, Some(vec!["/anon".to_string()]));
        assert_eq!(b.attach_stdout, Some(false));
        let h = b.host_config.as_ref().unwrap();
        assert_eq!(h.binds, Some(vec!["/srv:/data:ro".into(), "vol:/v".into()]));
        assert_eq!(h.memory, Some(512 * 1024 * 1024));
        assert_eq!(h.nano_cpus, Some(1_500_000_000));
        assert_eq!(h.pids_limit, Some(64));
        assert_eq!(h.network_mode.as_deref(), Some("host"));
        assert_eq!(
            h.restart_policy.as_ref().unwrap().maximum_retry_count,
            Some(3)
        );
        let pb = &h.port_bindings.as_ref().unwrap()["80/tcp"];
        assert_eq!(pb.as_ref().unwrap()[0].host_port.as_deref(), Some("8080"));

        let json = serde_json::to_value(b).unwrap();
        assert_eq!(json["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
        assert_eq!(
            json["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
            "8080"
        );
    }

    #[test]
    fn bad_flags_name_the_problem() {
        let err = build(&["-p", "80:abc", "busybox"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument \"80:abc\" for \"-p, --publish\" flag: invalid containerPort: abc"
        );
        assert_eq!(
            build(&["--memory", "lots", "busybox"]).unwrap_err().flag,
            "-m, --memory"
        );
        assert_eq!(
            build(&["--cpus", "x", "busybox"]).unwrap_err().flag,
            "--cpus"
        );
        assert_eq!(
            build(&["-e", "=v", "busybox"]).unwrap_err().flag,
            "-e, --env"
        );
        assert_eq!(
            build(&["-v", "./rel:/x", "busybox"]).unwrap_err().flag,
            "-v, --volume"
        );
        assert_eq!(
            build(&["--env-file", "/missing", "busybox"])
                .unwrap_err()
                .flag,
            "--env-file"
        );
        assert_eq!(
            build(&["--rm", "--restart", "always", "busybox"])
                .unwrap_err()
                .flag,
            "--restart"
        );
        assert_eq!(
            build(&["--name", "bad name", "busybox"]).unwrap_err().flag,
            "--name"
        );
    }

    #[test]
    fn restart_policies() {
        assert_eq!(
            parse_restart("always").unwrap().name,
            Some(RestartPolicyNameEnum::ALWAYS)
        );
        assert!(parse_restart("sometimes").is_err());
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("on-failure:x").is_err());
    }
}

#[cfg(test)]
mod isolation_tests {
    use super::*;

    #[test]
    fn vm_isolations_travel_as_runtimes() {
        let p = |i, r| parse_isolation(i, r).map_err(|e| e.to_string());
        assert_eq!(p(Some("vm"), None), Ok((None, Some("vmrun-vm".into()))));
        assert_eq!(p(Some("hyperv"), None), Ok((None, Some("vmrun-vm".into()))));
        assert_eq!(
            p(Some("shared-vm"), None),
            Ok((None, Some("vmrun-shared-vm".into())))
        );
        assert_eq!(
            p(Some("process"), Some("runc")),
            Ok((Some(HostConfigIsolationEnum::PROCESS), Some("runc".into())))
        );
        assert_eq!(p(None, Some("vm")), Ok((None, Some("vm".into()))));
        let e = p(Some("vm"), Some("runc")).unwrap_err();
        assert!(e.contains("conflicts with --runtime runc"), "{e}");
        let e = p(Some("sandbox"), None).unwrap_err();
        assert!(e.contains("sandbox"), "{e}");
    }
}
