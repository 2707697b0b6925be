//! Metadata-only instructions (ENV, LABEL, CMD, ENTRYPOINT, USER, EXPOSE, VOLUME,
//! STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD) applied to a stage's image config in
//! docker's keys, with the text docker records for them in the image history.

use serde_json::{json, Map, Value};
use vmrun_builder::{expand_word, expand_words, Command, Instruction, Vars};

/// Go's `%q` of a string list (`["a" "b"]`), as docker writes commands in history.
pub fn go_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|i| serde_json::to_string(i).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%v` of a duration given in nanoseconds (`30s`, `1m30s`, `1.5s`, `0s`), as
/// docker's history text shows healthcheck intervals.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = (nanos % 60_000_000_000) as f64 / 1e9;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    let mut secs = format!("{seconds:.9}");
    secs = secs.trim_end_matches('0').trim_end_matches('.').to_owned();
    out.push_str(&format!("{secs}s"));
    out
}

/// The strings in `config[key]` (an array of strings), or empty.
pub fn strings(config: &Map<String, Value>, key: &str) -> Vec<String> {
    config
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A non-empty string field of `config` (`User`, `WorkingDir`).
pub fn strings_value(config: &Map<String, Value>, key: &str) -> Option<String> {
    config
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// `config.Env` as variables for substitution.
pub fn env_vars(config: &Map<String, Value>) -> Vars {
    strings(config, "Env")
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv, String::new()),
        })
        .collect()
}

/// Sets `key=value` in `config.Env`, replacing an earlier value.
pub fn set_env(config: &mut Map<String, Value>, key: &str, value: &str) {
    let mut env = strings(config, "Env");
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
    config.insert("Env".into(), json!(env));
}

/// The stage's shell (`SHELL`, default `/bin/sh -c`).
pub fn shell(config: &Map<String, Value>) -> Vec<String> {
    let shell = strings(config, "Shell");
    if shell.is_empty() {
        vec!["/bin/sh".to_owned(), "-c".to_owned()]
    } else {
        shell
    }
}

/// A command's argv: exec form as is, shell form run by the stage's shell.
pub fn argv(config: &Map<String, Value>, command: &Command) -> Vec<String> {
    match command {
        Command::Exec(list) => list.clone(),
        Command::Shell(text) => {
            let mut argv = shell(config);
            argv.push(text.clone());
            argv
        }
    }
}

fn object<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    if !config.get(key).is_some_and(Value::is_object) {
        config.insert(key.to_owned(), json!({}));
    }
    match config.get_mut(key) {
        Some(Value::Object(map)) => map,
        _ => unreachable!("inserted as an object above"),
    }
}

/// `80`, `80/udp`, `8000-8002/tcp` as exposed-port keys.
fn port_keys(word: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match word.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (word, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let bad = || format!("invalid containerPort: {ports}");
    let (low, high) = match ports.split_once('-') {
        Some((l, h)) => (
            l.parse::<u16>().map_err(|_| bad())?,
            h.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if high < low {
        return Err(bad());
    }
    Ok((low..=high).map(|p| format!("{p}/{proto}")).collect())
}

/// Expanded `(key, value)` pairs; every value sees the variables from before the instruction.
fn pairs(
    raw: &[(String, String)],
    vars: &Vars,
    escape: char,
) -> Result<Vec<(String, String)>, String> {
    raw.iter()
        .map(|(k, v)| {
            Ok((
                expand_word(k, vars, escape).map_err(|e| e.to_string())?,
                expand_word(v, vars, escape).map_err(|e| e.to_string())?,
            ))
        })
        .collect()
}

/// Applies a metadata-only instruction to `config`; returns the history comment
/// (`CMD ["sh"]`), or None when `instruction` is not one of these.
pub fn apply(
    config: &mut Map<String, Value>,
    instruction: &Instruction,
    vars: &Vars,
    escape: char,
    cmd_set: &mut bool,
) -> Result<Option<String>, String> {
    let word = |w: &str| expand_word(w, vars, escape).map_err(|e| e.to_string());
    let comment = match instruction {
        Instruction::Env(raw) => {
            let pairs = pairs(raw, vars, escape)?;
            for (k, v) in &pairs {
                set_env(config, k, v);
            }
            let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("ENV {}", text.join(" "))
        }
        Instruction::Label(raw) => {
            let pairs = pairs(raw, vars, escape)?;
            let labels = object(config, "Labels");
            for (k, v) in &pairs {
                labels.insert(k.clone(), json!(v));
            }
            let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("LABEL {}", text.join(" "))
        }
        Instruction::Cmd(command) => {
            let argv = argv(config, command);
            config.insert("Cmd".into(), json!(argv));
            *cmd_set = true;
            format!("CMD {}", go_list(&argv))
        }
        Instruction::Entrypoint(command) => {
            let argv = argv(config, command);
            config.insert("Entrypoint".into(), json!(argv));
            if !*cmd_set {
                config.insert("Cmd".into(), Value::Null);
            }
            format!("ENTRYPOINT {}", go_list(&argv))
        }
        Instruction::User(raw) => {
            let user = word(raw)?;
            config.insert("User".into(), json!(user));
            format!("USER {user}")
        }
        Instruction::Expose(raw) => {
            let mut keys = Vec::new();
            let mut words = expand_words(raw, vars, escape).map_err(|e| e.to_string())?;
            for w in &words {
                keys.extend(port_keys(w)?);
            }
            let ports = object(config, "ExposedPorts");
            for k in &keys {
                ports.insert(k.clone(), json!({}));
            }
            // docker's history shows the words as given, sorted.
            words.sort();
            format!("EXPOSE {}", words.join(" "))
        }
        Instruction::Volume(command) => {
            let list = match command {
                Command::Exec(list) => list
                    .iter()
                    .map(|v| word(v))
                    .collect::<Result<Vec<_>, _>>()?,
                Command::Shell(text) => {
                    expand_words(text, vars, escape).map_err(|e| e.to_string())?
                }
            };
            if list.iter().any(|v| v.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            let volumes = object(config, "Volumes");
            for v in &list {
                volumes.insert(v.clone(), json!({}));
            }
            format!("VOLUME {}", go_list(&list).replace('"', ""))
        }
        Instruction::StopSignal(raw) => {
            let signal = word(raw)?;
            crate::engine::parse_signal(&signal).map_err(|e| e.to_string())?;
            config.insert("StopSignal".into(), json!(signal));
            format!("STOPSIGNAL {signal}")
        }
        Instruction::Healthcheck(h) => {
            let mut value = json!({ "Test": h.test });
            for (key, n) in [
                ("Interval", h.interval),
                ("Timeout", h.timeout),
                ("StartPeriod", h.start_period),
                ("Retries", h.retries),
            ] {
                if n != 0 {
                    value[key] = json!(n);
                }
            }
            config.insert("Healthcheck".into(), value);
            // Go's `%v` of docker's HealthConfig, as dockerd writes it.
            format!(
                "HEALTHCHECK &{{{} \"{}\" \"{}\" \"{}\" '\\x{:02x}'}}",
                go_list(&h.test),
                go_duration(h.interval),
                go_duration(h.timeout),
                go_duration(h.start_period),
                h.retries
            )
        }
        Instruction::Shell(list) => {
            config.insert("Shell".into(), json!(list));
            format!("SHELL [{}]", list.join(" "))
        }
        Instruction::Onbuild(trigger) => {
            let mut triggers = strings(config, "OnBuild");
            triggers.push(trigger.clone());
            config.insert("OnBuild".into(), json!(triggers));
            format!("ONBUILD {trigger}")
        }
        _ => return Ok(None),
    };
    Ok(Some(comment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmrun_builder::Dockerfile;

    fn run(text: &str) -> Result<Map<String, Value>, String> {
        let file = Dockerfile::parse(text).map_err(|e| e.to_string())?;
        let mut config = Map::new();
        let mut cmd_set = false;
        for step in &file.stages[0].steps[1..] {
            let vars = env_vars(&config);
            apply(&mut config, &step.instruction, &vars, '\\', &mut cmd_set)?;
        }
        Ok(config)
    }

    #[test]
    fn env_sees_values_from_before_the_instruction() {
        let c = run("FROM x\nENV A=1\nENV A=2 B=$A\nLABEL l=\"$B x\"\n").unwrap();
        assert_eq!(c["Env"], json!(["A=2", "B=1"]));
        assert_eq!(c["Labels"], json!({ "l": "1 x" }));
    }

    #[test]
    fn commands_ports_volumes() {
        let c = run(
            "FROM x\nCMD echo hi\nEXPOSE 80 53/udp 8000-8001\nVOLUME /a /b\nENTRYPOINT [\"e\"]\n",
        )
        .unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["e"]));
        assert_eq!(
            c["ExposedPorts"],
            json!({ "80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {} })
        );
        assert_eq!(c["Volumes"], json!({ "/a": {}, "/b": {} }));
        let c = run("FROM x\nENTRYPOINT [\"e\"]\n").unwrap();
        assert_eq!(c["Cmd"], Value::Null);
        assert!(run("FROM x\nEXPOSE 80/xyz\n").is_err());
        assert!(run("FROM x\nSTOPSIGNAL NOPE\n").is_err());
    }

    #[test]
    fn shell_changes_shell_form() {
        let c = run("FROM x\nSHELL [\"/bin/ash\", \"-eo\"]\nCMD run\n").unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/ash", "-eo", "run"]));
        assert_eq!(go_list(&["a".into(), "b c".into()]), "[\"a\" \"b c\"]");
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    }
}
