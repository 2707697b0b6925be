//! Variable interpolation in string values, as the Compose Specification defines it:
//! `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
//! `${VAR:?error}` / `${VAR?error}` (required), `${VAR:+alt}` / `${VAR+alt}`, and `$$` for a
//! literal `$`. Defaults may themselves hold references.

use std::collections::BTreeMap;

use serde_norway::Value;

use crate::error::{ComposeError, Location, Result};

/// Variables seen by interpolation: the process environment over the `.env` file.
pub type Environment = BTreeMap<String, String>;

/// Interpolates every string in `value` (mapping keys are left as they are). `file` and
/// the path of each string go into errors.
pub fn interpolate_value(value: &mut Value, env: &Environment, file: &str) -> Result<()> {
    walk(value, env, file, &mut Vec::new())
}

fn walk(value: &mut Value, env: &Environment, file: &str, path: &mut Vec<String>) -> Result<()> {
    match value {
        Value::String(text) if text.contains('$') => {
            *text = interpolate_str(text, env).map_err(|fault| fault.at(file, path))?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                walk(item, env, file, path)?;
                path.pop();
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                path.push(key.as_str().map(str::to_owned).unwrap_or_default());
                walk(item, env, file, path)?;
                path.pop();
            }
        }
        Value::Tagged(tagged) => walk(&mut tagged.value, env, file, path)?,
        _ => {}
    }
    Ok(())
}

/// Why a string could not be interpolated, before its location is known.
#[derive(Debug, PartialEq, Eq)]
pub enum Fault {
    /// A required variable without a value.
    Missing {
        /// Its name.
        variable: String,
        /// The message after `?`.
        message: String,
    },
    /// Unbalanced braces or a bad name.
    Syntax(String),
}

impl Fault {
    fn at(self, file: &str, path: &[String]) -> ComposeError {
        let (section, key) = split_path(path);
        let at = Location::new(file, section, key);
        match self {
            Fault::Missing { variable, message } => ComposeError::MissingVariable {
                at,
                variable,
                message,
            },
            Fault::Syntax(text) => ComposeError::BadInterpolation { at, text },
        }
    }
}

/// `services.web.environment.A` → (`services.web`, `environment.A`); other top-level
/// sections the same way; a top-level key alone → ("", key).
pub fn split_path(path: &[String]) -> (String, String) {
    match path {
        [] => (String::new(), String::new()),
        [key] => (String::new(), key.clone()),
        [section, entry, rest @ ..] => (format!("{section}.{entry}"), rest.join(".")),
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Interpolates one string.
pub fn interpolate_str(text: &str, env: &Environment) -> Result<String, Fault> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = matching_brace(body).ok_or_else(|| Fault::Syntax(text.to_owned()))?;
            out.push_str(&expand_braced(&body[..end], env, text)?);
            rest = &body[end + 1..];
        } else {
            let len = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(env.get(&after[..len]).map(String::as_str).unwrap_or(""));
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` closing a `${` whose body starts `body`, nested `${...}` skipped.
fn matching_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn expand_braced(body: &str, env: &Environment, whole: &str) -> Result<String, Fault> {
    let name_len = body.find(|c| !is_name_char(c)).unwrap_or(body.len());
    let name = &body[..name_len];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Fault::Syntax(whole.to_owned()));
    }
    let value = env.get(name);
    let operator = &body[name_len..];
    let set = value.is_some();
    let non_empty = value.is_some_and(|v| !v.is_empty());
    let current = || value.cloned().unwrap_or_default();
    let nested = |text: &str| interpolate_str(text, env);
    let required = |message: &str, ok: bool| {
        if ok {
            Ok(current())
        } else {
            Err(Fault::Missing {
                variable: name.to_owned(),
                message: nested(message)?,
            })
        }
    };
    if operator.is_empty() {
        Ok(current())
    } else if let Some(default) = operator.strip_prefix(":-") {
        if non_empty {
            Ok(current())
        } else {
            nested(default)
        }
    } else if let Some(default) = operator.strip_prefix('-') {
        if set {
            Ok(current())
        } else {
            nested(default)
        }
    } else if let Some(message) = operator.strip_prefix(":?") {
        required(message, non_empty)
    } else if let Some(message) = operator.strip_prefix('?') {
        required(message, set)
    } else if let Some(alt) = operator.strip_prefix(":+") {
        if non_empty {
            nested(alt)
        } else {
            Ok(String::new())
        }
    } else if let Some(alt) = operator.strip_prefix('+') {
        if set {
            nested(alt)
        } else {
            Ok(String::new())
        }
    } else {
        Err(Fault::Syntax(whole.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        [("A", "1"), ("EMPTY", ""), ("NAME", "web")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn forms() {
        let e = env();
        let i = |s: &str| interpolate_str(s, &e).unwrap();
        assert_eq!(i("x$A-${A}y"), "x1-1y");
        assert_eq!(i("$$A and $${A}"), "$A and ${A}");
        assert_eq!(i("${UNSET:-d}/${EMPTY:-d}/${EMPTY-d}/${UNSET-d}"), "d/d//d");
        assert_eq!(i("${UNSET:-${NAME}-x}"), "web-x");
        assert_eq!(i("${A:+yes}${EMPTY:+no}${EMPTY+set}"), "yesset");
        assert_eq!(i("cost: 5$"), "cost: 5$");
        assert_eq!(i("$UNSET."), ".");
    }

    #[test]
    fn required_variables() {
        let e = env();
        assert_eq!(
            interpolate_str("${TOKEN:?set TOKEN first}", &e),
            Err(Fault::Missing {
                variable: "TOKEN".into(),
                message: "set TOKEN first".into()
            })
        );
        assert!(interpolate_str("${EMPTY:?x}", &e).is_err());
        assert_eq!(interpolate_str("${EMPTY?x}", &e).unwrap(), "");
        assert!(matches!(interpolate_str("${A", &e), Err(Fault::Syntax(_))));
        assert!(matches!(
            interpolate_str("${A!}", &e),
            Err(Fault::Syntax(_))
        ));
    }

    #[test]
    fn errors_name_the_place() {
        let mut v: Value =
            serde_norway::from_str("services:\n  web:\n    image: \"${IMG:?no image}\"\n").unwrap();
        let err = interpolate_value(&mut v, &env(), "compose.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "compose.yaml: service \"web\": key \"image\": required variable IMG is missing a value: no image"
        );
    }
}
