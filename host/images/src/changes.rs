//! Dockerfile instructions applied to an image config, as `docker import
//! --change` and `docker commit --change` take them.
//!
//! Supported: `CMD`, `ENTRYPOINT` (JSON array, or shell form run by
//! `/bin/sh -c`), `ENV` and `LABEL` (`k=v [k=v...]`, or the legacy `k v`),
//! `WORKDIR` (relative paths join the previous one), `USER`, `EXPOSE`
//! (`80`, `80/udp`, `8000-8002`), `STOPSIGNAL`, `VOLUME` (JSON array or
//! words). Anything else is refused as dockerd 20.10 refuses it:
//! `<instr> is not a valid change command` (instruction in lower case).

use serde_json::{Map, Value};

use crate::error::ImageError;

/// Applies `changes` in order to the docker-style config object `config`
/// (`Cmd`, `Entrypoint`, `Env`, `WorkingDir`, `User`, `ExposedPorts`,
/// `Labels`, `StopSignal`, `Volumes`).
pub(crate) fn apply_changes(
    config: &mut Map<String, Value>,
    changes: &[String],
) -> Result<(), ImageError> {
    let mut cmd_set = false;
    for change in changes {
        let line = change.trim();
        if line.is_empty() {
            continue;
        }
        let (instruction, args) = match line.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((i, a)) => (i.to_ascii_uppercase(), a.trim()),
            None => (line.to_ascii_uppercase(), ""),
        };
        let invalid =
            |reason: String| ImageError::InvalidChange(format!("{instruction}: {reason}"));
        let known = [
            "CMD",
            "ENTRYPOINT",
            "ENV",
            "LABEL",
            "WORKDIR",
            "USER",
            "EXPOSE",
            "STOPSIGNAL",
            "VOLUME",
        ];
        if !known.contains(&instruction.as_str()) {
            // dockerd names the instruction in lower case here.
            return Err(ImageError::InvalidChange(format!(
                "{} is not a valid change command",
                instruction.to_ascii_lowercase()
            )));
        }
        let single = matches!(instruction.as_str(), "USER" | "STOPSIGNAL");
        if single && args.split_ascii_whitespace().count() != 1 {
            return Err(ImageError::InvalidChange(format!(
                "{instruction} requires exactly one argument"
            )));
        }
        // A bare CMD/ENTRYPOINT is the empty shell form, `["/bin/sh", "-c"]`, as in dockerd.
        if args.is_empty() && !matches!(instruction.as_str(), "CMD" | "ENTRYPOINT") {
            return Err(ImageError::InvalidChange(format!(
                "{instruction} requires at least one argument"
            )));
        }
        match instruction.as_str() {
            "CMD" => {
                config.insert("Cmd".into(), string_array(&command_form(args)));
                cmd_set = true;
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), string_array(&command_form(args)));
                // Like a Dockerfile build: an ENTRYPOINT resets a CMD not set by these changes.
                if !cmd_set {
                    config.remove("Cmd");
                }
            }
            "ENV" => {
                let mut env: Vec<String> = strings_of(config.get("Env"));
                for (key, value) in name_values(args).map_err(invalid)? {
                    let prefix = format!("{key}=");
                    let entry = format!("{key}={value}");
                    match env
                        .iter_mut()
                        .find(|e| e.starts_with(&prefix) || **e == key)
                    {
                        Some(existing) => *existing = entry,
                        None => env.push(entry),
                    }
                }
                config.insert("Env".into(), string_array(&env));
            }
            "LABEL" => {
                let labels = object_entry(config, "Labels");
                for (key, value) in name_values(args).map_err(invalid)? {
                    labels.insert(key, Value::String(value));
                }
            }
            "WORKDIR" => {
                let current = config
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or("/");
                let joined = if args.starts_with('/') {
                    args.to_owned()
                } else {
                    format!("{current}/{args}")
                };
                config.insert("WorkingDir".into(), Value::String(clean_path(&joined)));
            }
            "USER" => {
                config.insert("User".into(), Value::String(args.to_owned()));
            }
            "STOPSIGNAL" => {
                if !is_signal(args) {
                    return Err(invalid(format!("invalid signal {args:?}")));
                }
                config.insert("StopSignal".into(), Value::String(args.to_owned()));
            }
            "EXPOSE" => {
                let mut ports = Vec::new();
                for word in split_words(args).map_err(invalid)? {
                    ports.extend(port_keys(&word).map_err(invalid)?);
                }
                let exposed = object_entry(config, "ExposedPorts");
                for port in ports {
                    exposed.insert(port, Value::Object(Map::new()));
                }
            }
            "VOLUME" => {
                let volumes = match json_array(args) {
                    Some(v) => v,
                    None => split_words(args).map_err(invalid)?,
                };
                if volumes.iter().any(|v| v.trim().is_empty()) {
                    return Err(invalid(
                        "VOLUME specified can not be an empty string".into(),
                    ));
                }
                let map = object_entry(config, "Volumes");
                for volume in volumes {
                    map.insert(volume, Value::Object(Map::new()));
                }
            }
            _ => unreachable!("instruction checked against the known list above"),
        }
    }
    Ok(())
}

/// A JSON array of strings (exec form), else `["/bin/sh", "-c", args]` (shell form).
fn command_form(args: &str) -> Vec<String> {
    json_array(args).unwrap_or_else(|| {
        let mut shell = vec!["/bin/sh".to_owned(), "-c".to_owned()];
        if !args.is_empty() {
            shell.push(args.to_owned());
        }
        shell
    })
}

fn json_array(args: &str) -> Option<Vec<String>> {
    if !args.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(args).ok()
}

fn string_array(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

fn strings_of(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn object_entry<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = config
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(map) => map,
        _ => unreachable!("replaced by an object above"),
    }
}

/// `k=v [k=v...]` (quotes and backslashes as in a Dockerfile), or the legacy `k v...`.
fn name_values(args: &str) -> Result<Vec<(String, String)>, String> {
    let first = args.split_ascii_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (key, value) = args
            .split_once(|c: char| c.is_ascii_whitespace())
            .ok_or_else(|| format!("{args:?} has no value (use name=value)"))?;
        let value = split_words(value.trim())?.join(" ");
        return Ok(vec![(key.to_owned(), value)]);
    }
    split_words(args)?
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some(("", _)) => Err(format!("{word:?}: the name is empty")),
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => Err(format!(
                "can't find = in {word:?}; must be of the form name=value"
            )),
        })
        .collect()
}

/// Splits on unquoted whitespace, removing quotes; `\` escapes the next character
/// (outside single quotes).
fn split_words(args: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = args.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.push(c),
            (_, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unmatched {q} quote in {args:?}"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `80` → `80/tcp`, `53/udp`, `8000-8001/tcp` → both ports.
fn port_keys(spec: &str) -> Result<Vec<String>, String> {
    let (range, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto {proto:?} in {spec:?}"));
    }
    let port = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("invalid port {s:?} in {spec:?}"))
    };
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(range)?, port(range)?),
    };
    if end < start {
        return Err(format!("invalid port range {spec:?}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// A signal number, or a name like `SIGTERM`/`TERM`/`SIGRTMIN+3`.
fn is_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+' || c == '-')
}

/// Lexically cleans an absolute path (`/a/./b/../c` → `/a/c`).
fn clean_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(changes: &[&str]) -> Result<Value, ImageError> {
        let mut config = Map::new();
        let changes: Vec<String> = changes.iter().map(|s| (*s).to_owned()).collect();
        apply_changes(&mut config, &changes)?;
        Ok(Value::Object(config))
    }

    #[test]
    fn exec_and_shell_forms() {
        let c = apply(&[r#"CMD ["echo", "hi"]"#, "ENTRYPOINT /bin/app --flag"]).unwrap();
        assert_eq!(c["Cmd"], json!(["echo", "hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/app --flag"]));
        let c = apply(&["cmd echo hi", r#"entrypoint ["/x"]"#]).unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/x"]));
        // A CMD after the ENTRYPOINT is kept.
        let c = apply(&["ENTRYPOINT [\"/x\"]", "CMD [\"y\"]"]).unwrap();
        assert_eq!(c["Cmd"], json!(["y"]));
        // Not a JSON array of strings: shell form, as docker does.
        let c = apply(&["CMD [1, 2]"]).unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "[1, 2]"]));
    }

    #[test]
    fn env_forms_and_override() {
        let c = apply(&[
            "ENV A=1 B=\"two words\" C=a\\ b",
            "ENV LEGACY some value",
            "ENV A=3",
        ])
        .unwrap();
        assert_eq!(
            c["Env"],
            json!(["A=3", "B=two words", "C=a b", "LEGACY=some value"])
        );
        assert!(matches!(
            apply(&["ENV A=1 B"]),
            Err(ImageError::InvalidChange(m)) if m.contains("can't find =")
        ));
        assert!(apply(&["ENV ONLYKEY"]).is_err());
        assert!(apply(&["ENV A=\"unterminated"]).is_err());
    }

    #[test]
    fn labels_ports_volumes() {
        let c = apply(&[
            "LABEL a=b \"c d\"=e",
            "LABEL legacy x y",
            "EXPOSE 80 53/udp 8000-8001",
            "VOLUME [\"/data\", \"/logs\"]",
            "VOLUME /cache /tmp/x",
        ])
        .unwrap();
        assert_eq!(c["Labels"], json!({"a": "b", "c d": "e", "legacy": "x y"}));
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
        );
        assert_eq!(
            c["Volumes"],
            json!({"/data": {}, "/logs": {}, "/cache": {}, "/tmp/x": {}})
        );
        assert!(apply(&["EXPOSE 80/foo"]).is_err());
        assert!(apply(&["EXPOSE 99999"]).is_err());
        assert!(apply(&["EXPOSE 90-80"]).is_err());
        assert!(apply(&["VOLUME [\"\"]"]).is_err());
    }

    #[test]
    fn workdir_user_stopsignal() {
        let c = apply(&[
            "WORKDIR /app",
            "WORKDIR sub/../src",
            "USER 1000:1000",
            "STOPSIGNAL SIGINT",
        ])
        .unwrap();
        assert_eq!(c["WorkingDir"], json!("/app/src"));
        assert_eq!(c["User"], json!("1000:1000"));
        assert_eq!(c["StopSignal"], json!("SIGINT"));
        assert_eq!(
            apply(&["WORKDIR rel"]).unwrap()["WorkingDir"],
            json!("/rel")
        );
        assert!(apply(&["STOPSIGNAL not a signal"]).is_err());
        assert!(apply(&["STOPSIGNAL 0"]).is_err());
    }

    #[test]
    fn refuses_other_instructions() {
        for (change, name) in [
            ("RUN x", "run"),
            ("from busybox", "from"),
            ("COPY a b", "copy"),
            ("ONBUILD RUN x", "onbuild"),
        ] {
            match apply(&[change]) {
                Err(ImageError::InvalidChange(m)) => {
                    assert_eq!(m, format!("{name} is not a valid change command"))
                }
                other => panic!("{change}: {other:?}"),
            }
        }
        assert!(matches!(
            apply(&["LABEL"]),
            Err(ImageError::InvalidChange(m)) if m.contains("requires at least one argument")
        ));
        assert!(matches!(
            apply(&["USER a b"]),
            Err(ImageError::InvalidChange(m)) if m == "USER requires exactly one argument"
        ));
        assert_eq!(apply(&["CMD"]).unwrap()["Cmd"], json!(["/bin/sh", "-c"]));
        assert_eq!(apply(&["", "  "]).unwrap(), json!({}));
    }
}
