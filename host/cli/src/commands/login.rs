//! `vmrun login` and `vmrun logout`: credentials checked by the daemon
//! (`POST /auth`) and kept like docker's `config.json`
//! (`auths.<server>.auth` = base64 `user:password`, file mode 0600), in
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. Pulls send the
//! stored credentials of the image's registry as `X-Registry-Auth`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bollard::auth::DockerCredentials;
use http_body_util::BodyExt;

use crate::api::{raw, Api};
use crate::error::{daemon_message, CliError, CliResult};

/// docker's key for Docker Hub in `config.json`.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";
/// Names of Docker Hub, all stored under [`DOCKER_HUB_SERVER`].
const DOCKER_HUB_NAMES: &[&str] = &[
    "index.docker.io",
    "docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// Arguments of `login`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// The registry (default: Docker Hub)
    pub server: Option<String>,
}

/// Arguments of `logout`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub)
    pub server: Option<String>,
}

/// The registry host a server address names (`https://host:5000/v2/` →
/// `host:5000`); every Docker Hub name gives `docker.io`.
pub fn registry_host(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    if host.is_empty() || DOCKER_HUB_NAMES.contains(&host) {
        "docker.io".to_owned()
    } else {
        host.to_owned()
    }
}

/// The `config.json` key for `server`: docker's Hub URL, else the host.
pub fn config_key(server: &str) -> String {
    match registry_host(server).as_str() {
        "docker.io" => DOCKER_HUB_SERVER.to_owned(),
        host => host.to_owned(),
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn config_path() -> CliResult<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
        .ok_or_else(|| {
            CliError::new(
                1,
                "cannot find the docker config: neither DOCKER_CONFIG nor HOME is set",
            )
        })
}

fn read_config(path: &Path) -> CliResult<serde_json::Value> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| CliError::new(1, format!("loading config file {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(CliError::new(
            1,
            format!("reading config file {}: {e}", path.display()),
        )),
    }
}

/// Writes `config` to `path` with mode 0600 (through a temporary file and a rename).
fn write_config(path: &Path, config: &serde_json::Value) -> CliResult<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let fail =
        |what: &str, e: std::io::Error| CliError::new(1, format!("{what} {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail("creating the directory of", e))?;
    }
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    let text = serde_json::to_string_pretty(config)
        .map_err(|e| CliError::new(1, format!("encoding the config: {e}")))?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("writing", e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail("replacing", e)
    })
}

/// The stored credentials for `registry` (a host, `docker.io` for the Hub), if any.
pub fn stored_credentials(registry: &str) -> Option<DockerCredentials> {
    let path = config_path().ok()?;
    let config = read_config(&path).ok()?;
    let wanted = registry_host(registry);
    let auths = config.get("auths")?.as_object()?;
    let (key, entry) = auths.iter().find(|(k, _)| registry_host(k) == wanted)?;
    let auth = entry.get("auth")?.as_str()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(DockerCredentials {
        username: Some(user.to_owned()),
        password: Some(password.to_owned()),
        serveraddress: Some(key.clone()),
        ..Default::default()
    })
}

/// Reads one line from the terminal, with echo off when `secret`.
fn prompt(label: &str, secret: bool) -> CliResult<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let saved = if secret { tcgetattr(&stdin).ok() } else { None };
    if let Some(original) = &saved {
        let mut quiet = original.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(original) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, original);
        eprintln!();
    }
    read.map_err(|e| CliError::new(1, format!("reading the {label}: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `vmrun login [-u USER] [-p PASS | --password-stdin] [SERVER]`.
pub async fn login(api: &Api, args: &LoginArgs) -> CliResult<i32> {
    let server = args
        .server
        .clone()
        .unwrap_or_else(|| DOCKER_HUB_SERVER.to_owned());
    let interactive = std::io::stdin().is_terminal();
    let password = if args.password_stdin {
        if args.username.is_none() {
            return Err(CliError::new(
                1,
                "Must provide --username with --password-stdin",
            ));
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| CliError::new(1, format!("reading the password from stdin: {e}")))?;
        Some(text.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        if args.password.is_some() {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        }
        args.password.clone()
    };
    let username = match &args.username {
        Some(u) => u.clone(),
        None if interactive => prompt("Username: ", false)?,
        None => {
            return Err(CliError::new(
                1,
                "Error: Cannot perform an interactive login from a non TTY device",
            ))
        }
    };
    let password = match password {
        Some(p) => p,
        None if interactive => prompt("Password: ", true)?,
        None => {
            return Err(CliError::new(
                1,
                "Error: Cannot perform an interactive login from a non TTY device",
            ))
        }
    };
    if username.is_empty() {
        return Err(CliError::new(1, "Error: Non-null Username Required"));
    }
    if password.is_empty() {
        return Err(CliError::new(1, "Error: Password Required"));
    }
    let body = serde_json::json!({
        "username": username,
        "password": password,
        "serveraddress": server,
    });
    let response = raw::request(
        &api.socket,
        hyper::Method::POST,
        "/auth",
        Some(body.to_string().into_bytes()),
    )
    .await
    .map_err(|e| CliError::new(1, daemon_message(&e)))?;
    let answer = response
        .into_body()
        .collect()
        .await
        .map_err(|e| CliError::new(1, format!("reading the daemon's answer: {e}")))?
        .to_bytes();
    let status = serde_json::from_slice::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v.get("Status").and_then(|s| s.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "Login Succeeded".to_owned());

    let path = config_path()?;
    let mut config = read_config(&path)?;
    let key = config_key(&server);
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let Some(root) = config.as_object_mut() else {
        return Err(CliError::new(
            1,
            format!("config file {} is not a JSON object", path.display()),
        ));
    };
    let auths = root.entry("auths").or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    if let Some(map) = auths.as_object_mut() {
        // One entry per registry: drop other spellings of the same one.
        let host = registry_host(&server);
        map.retain(|k, _| registry_host(k) != host);
        map.insert(key, serde_json::json!({ "auth": auth }));
    }
    write_config(&path, &config)?;
    println!("{status}");
    Ok(0)
}

/// `vmrun logout [SERVER]`: forgets the stored credentials (local only).
pub fn logout(args: &LogoutArgs) -> CliResult<i32> {
    let server = args
        .server
        .clone()
        .unwrap_or_else(|| DOCKER_HUB_SERVER.to_owned());
    let key = config_key(&server);
    let path = config_path()?;
    let mut config = read_config(&path)?;
    let host = registry_host(&server);
    let removed = config
        .get_mut("auths")
        .and_then(|a| a.as_object_mut())
        .map(|map| {
            let before = map.len();
            map.retain(|k, _| registry_host(k) != host);
            before != map.len()
        })
        .unwrap_or(false);
    if !removed {
        println!("Not logged in to {key}");
        return Ok(0);
    }
    write_config(&path, &config)?;
    println!("Removing login credentials for {key}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_map_to_hosts_and_keys() {
        assert_eq!(registry_host(DOCKER_HUB_SERVER), "docker.io");
        assert_eq!(registry_host("docker.io"), "docker.io");
        assert_eq!(registry_host("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(config_key("index.docker.io"), DOCKER_HUB_SERVER);
        assert_eq!(config_key("https://ghcr.io"), "ghcr.io");
    }

    #[test]
    fn config_is_written_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config.json");
        let config =
            serde_json::json!({ "auths": { "127.0.0.1:5000": { "auth": "dTpw" } }, "other": 1 });
        write_config(&path, &config).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_config(&path).unwrap(), config);
        assert_eq!(
            read_config(&dir.path().join("missing")).unwrap(),
            serde_json::json!({})
        );
    }
}
