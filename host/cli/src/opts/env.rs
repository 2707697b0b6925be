//! `-e K=V`, `--env-file F` and `--label k=v`.

use std::collections::HashMap;

/// Validates one `-e` value like docker's `opts.ValidateEnv`: `K=V` is kept,
/// a bare `K` takes its value from `lookup` (the CLI's own environment) or
/// is passed on unchanged when unset. An empty name is an error.
pub fn parse_env(value: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, has_value) = match value.split_once('=') {
        Some((k, _)) => (k, true),
        None => (value, false),
    };
    if name.trim().is_empty() {
        return Err(format!("invalid environment variable: {value}"));
    }
    if has_value {
        return Ok(value.to_string());
    }
    Ok(match lookup(name) {
        Some(v) => format!("{name}={v}"),
        None => value.to_string(),
    })
}

/// Parses the text of an env file like docker's `parseKeyValueFile`: blank
/// lines and `#` comments are skipped, `K=V` lines are kept verbatim, a bare
/// `K` takes its value from `lookup` and is dropped when unset.
pub fn parse_env_file_text(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim_start(), Some(v)),
            None => (line.trim_end(), None),
        };
        if name.is_empty() {
            return Err(format!("no variable name on line {}: '{line}'", index + 1));
        }
        if name.contains(char::is_whitespace) {
            return Err(format!("variable '{name}' contains whitespaces"));
        }
        match value {
            Some(v) => out.push(format!("{name}={v}")),
            None => {
                if let Some(v) = lookup(name) {
                    out.push(format!("{name}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// Parses `--label k=v` values into a map (`k` alone gives an empty value).
pub fn parse_labels(values: &[String]) -> Result<HashMap<String, String>, String> {
    let mut labels = HashMap::new();
    for value in values {
        let (k, v) = value.split_once('=').unwrap_or((value.as_str(), ""));
        if k.trim().is_empty() {
            return Err(format!("invalid label '{value}': empty name"));
        }
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(k: &str) -> Option<String> {
        (k == "HOME_SET").then(|| "/root".to_string())
    }

    #[test]
    fn env_values() {
        assert_eq!(parse_env("A=1", lookup), Ok("A=1".into()));
        assert_eq!(parse_env("A=", lookup), Ok("A=".into()));
        assert_eq!(parse_env("A=b=c", lookup), Ok("A=b=c".into()));
        assert_eq!(parse_env("HOME_SET", lookup), Ok("HOME_SET=/root".into()));
        assert_eq!(parse_env("UNSET", lookup), Ok("UNSET".into()));
        assert_eq!(
            parse_env("=x", lookup),
            Err("invalid environment variable: =x".into())
        );
        assert!(parse_env("", lookup).is_err());
    }

    #[test]
    fn env_file() {
        let text = "\u{feff}# comment\n\nA=1\n  B = two \nHOME_SET\nUNSET\nC=\n";
        let got = parse_env_file_text(text, lookup);
        assert_eq!(
            got,
            Err("variable 'B ' contains whitespaces".to_string()),
            "docker rejects spaces before '='"
        );
        let text = "# comment\n\nA=1\nB= two \nHOME_SET\nUNSET\nC=\n";
        assert_eq!(
            parse_env_file_text(text, lookup),
            Ok(vec![
                "A=1".to_string(),
                "B= two ".to_string(),
                "HOME_SET=/root".to_string(),
                "C=".to_string()
            ])
        );
        assert!(parse_env_file_text("=x\n", lookup).is_err());
    }

    #[test]
    fn labels() {
        let labels = parse_labels(&["a=b".into(), "flag".into(), "x=y=z".into()]).unwrap();
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["flag"], "");
        assert_eq!(labels["x"], "y=z");
        assert!(parse_labels(&["=v".into()]).is_err());
    }
}
