//! A subset of Go's `text/template`, enough for docker-style `--format`.
//!
//! Supported:
//! - text with `{{ action }}`s, `{{-`/`-}}` whitespace trimming, `{{/* comments */}}`;
//! - operands: `.` and field paths `.State.ExitCode`, string literals
//!   (`"x"` or `` `x` ``) and integers;
//! - functions: `json`, `join LIST SEP`, `split STR SEP`, `index X KEY...`,
//!   `upper`, `lower`, `title`, `truncate STR N`, `len`, `println`;
//! - pipes: `{{.Names | upper}}`;
//! - a leading `table` keyword (header row + aligned columns) and the
//!   escapes `\t` and `\n` in the format string.
//!
//! Control structures (`if`, `range`, `with`, `define`, `template`,
//! `block`, `else`, `end`), variables (`$x`) and parentheses are rejected
//! with a clear error.

use serde_json::Value;

/// A bad template or a failure while executing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The format string could not be parsed or uses an unsupported feature.
    #[error("template parsing error: {0}")]
    Parse(String),
    /// Executing the template on a value failed.
    #[error("template: {0}")]
    Exec(String),
}

const FUNCS: &[&str] = &[
    "json", "join", "split", "index", "upper", "lower", "title", "truncate", "len", "println",
];
const UNSUPPORTED: &[&str] = &[
    "if", "range", "with", "else", "end", "define", "template", "block", "break", "continue",
    "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "printf", "print", "slice", "call",
    "html", "js", "urlquery", "pad",
];

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Field(Vec<String>),
    Str(String),
    Int(i64),
    Func(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Vec<Vec<Arg>>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    table: bool,
    nodes: Vec<Node>,
}

impl Template {
    /// Parses a format string.
    pub fn parse(format: &str) -> Result<Self, TemplateError> {
        let mut text = format.trim_matches(' ');
        let table = text.starts_with("table");
        if table {
            text = text["table".len()..].trim_matches(' ');
        }
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        let nodes = parse_nodes(&text)?;
        Ok(Self { table, nodes })
    }

    /// Whether the format started with `table`.
    pub fn is_table(&self) -> bool {
        self.table
    }

    /// Fails like Go's template engine on a typed context when a field path
    /// starts with a name that `known` (an object of the valid fields) lacks.
    pub fn check_fields(&self, known: &Value) -> Result<(), TemplateError> {
        for node in &self.nodes {
            let Node::Action(pipeline) = node else {
                continue;
            };
            for arg in pipeline.iter().flatten() {
                if let Arg::Field(path) = arg {
                    if let Some(root) = path.first().filter(|r| known.get(r.as_str()).is_none()) {
                        return Err(TemplateError::Parse(format!(
                            "template: executing \"\" at <.{root}>: can't evaluate field {root}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Executes the template on `data`.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        for node in &self.nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(pipeline) => {
                    let v = eval_pipeline(pipeline, data)?;
                    out.push_str(&go_print(v.as_ref()));
                }
            }
        }
        Ok(out)
    }
}

fn unsupported(what: &str) -> TemplateError {
    TemplateError::Parse(format!(
        "unsupported template action \"{what}\": vmrun's --format supports field paths (.State.Status), \
string and integer literals, pipes and the functions {}",
        FUNCS.join(", ")
    ))
}

fn parse_nodes(text: &str) -> Result<Vec<Node>, TemplateError> {
    let mut nodes = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(start) = rest.find("{{") else {
            let t = if trim_next { rest.trim_start() } else { rest };
            nodes.push(Node::Text(t.to_string()));
            break;
        };
        let mut before = &rest[..start];
        if trim_next {
            before = before.trim_start();
        }
        let after_open = &rest[start + 2..];
        let trim_left = after_open.starts_with("- ")
            || after_open.starts_with("-\t")
            || after_open.starts_with("-\n");
        if trim_left {
            before = before.trim_end();
        }
        if !before.is_empty() {
            nodes.push(Node::Text(before.to_string()));
        }
        let inner_start = if trim_left { 1 } else { 0 };
        let end = after_open
            .find("}}")
            .ok_or_else(|| TemplateError::Parse(format!("unclosed action in \"{text}\"")))?;
        let mut inner = &after_open[inner_start..end];
        trim_next = false;
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 1];
            trim_next = true;
        }
        rest = &after_open[end + 2..];
        let inner = inner.trim();
        if inner.starts_with("/*") && inner.ends_with("*/") {
            continue;
        }
        nodes.push(Node::Action(parse_pipeline(inner)?));
    }
    Ok(nodes)
}

fn tokenize(src: &str) -> Result<Vec<String>, TemplateError> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '|' {
            tokens.push("|".into());
            i += 1;
        } else if c == '"' || c == '`' {
            let mut tok = String::from(c);
            i += 1;
            let mut closed = false;
            while i < chars.len() {
                let d = chars[i];
                tok.push(d);
                i += 1;
                if d == '\\' && c == '"' && i < chars.len() {
                    tok.push(chars[i]);
                    i += 1;
                } else if d == c {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(TemplateError::Parse(format!(
                    "unterminated string in \"{src}\""
                )));
            }
            tokens.push(tok);
        } else if c == '(' || c == ')' {
            return Err(unsupported("( )"));
        } else {
            let start = i;
            while i < chars.len()
                && !chars[i].is_whitespace()
                && !matches!(chars[i], '|' | '(' | ')')
            {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        }
    }
    Ok(tokens)
}

fn parse_string_literal(tok: &str) -> Result<String, TemplateError> {
    if let Some(raw) = tok.strip_prefix('`') {
        return Ok(raw.trim_end_matches('`').to_string());
    }
    serde_json::from_str::<String>(tok)
        .map_err(|e| TemplateError::Parse(format!("bad string literal {tok}: {e}")))
}

fn parse_arg(tok: &str) -> Result<Arg, TemplateError> {
    if tok == "." {
        return Ok(Arg::Field(Vec::new()));
    }
    if let Some(path) = tok.strip_prefix('.') {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(TemplateError::Parse(format!("bad field path \"{tok}\"")));
        }
        return Ok(Arg::Field(parts));
    }
    if tok.starts_with('"') || tok.starts_with('`') {
        return parse_string_literal(tok).map(Arg::Str);
    }
    if tok.starts_with('$') {
        return Err(unsupported(tok));
    }
    if let Ok(n) = tok.parse::<i64>() {
        return Ok(Arg::Int(n));
    }
    if FUNCS.contains(&tok) {
        return Ok(Arg::Func(tok.to_string()));
    }
    if UNSUPPORTED.contains(&tok) {
        return Err(unsupported(tok));
    }
    Err(TemplateError::Parse(format!(
        "function \"{tok}\" not defined"
    )))
}

fn parse_pipeline(src: &str) -> Result<Vec<Vec<Arg>>, TemplateError> {
    if src.is_empty() {
        return Err(TemplateError::Parse("missing value for command".into()));
    }
    let mut pipeline = vec![Vec::new()];
    for tok in tokenize(src)? {
        if tok == "|" {
            pipeline.push(Vec::new());
        } else if let Some(cmd) = pipeline.last_mut() {
            cmd.push(parse_arg(&tok)?);
        }
    }
    for (i, cmd) in pipeline.iter().enumerate() {
        match cmd.first() {
            None => {
                return Err(TemplateError::Parse(format!(
                    "missing command in \"{src}\""
                )))
            }
            Some(Arg::Func(_)) => {}
            Some(_) if cmd.len() > 1 => {
                return Err(TemplateError::Parse(format!(
                    "can't give argument to non-function in \"{src}\""
                )))
            }
            Some(_) if i > 0 => {
                return Err(TemplateError::Parse(format!(
                    "non executable command in pipeline stage {} of \"{src}\"",
                    i + 1
                )))
            }
            Some(_) => {}
        }
    }
    Ok(pipeline)
}

fn lookup(data: &Value, path: &[String]) -> Result<Option<Value>, TemplateError> {
    let mut cur = data;
    for (i, name) in path.iter().enumerate() {
        match cur {
            Value::Object(map) => match map.get(name) {
                Some(v) => cur = v,
                None => return Ok(None),
            },
            Value::Null => return Ok(None),
            other => {
                return Err(TemplateError::Exec(format!(
                    "can't evaluate field {name} in type {} (at .{})",
                    type_name(other),
                    path[..=i].join(".")
                )))
            }
        }
    }
    Ok(Some(cur.clone()))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "map",
    }
}

fn eval_arg(arg: &Arg, data: &Value) -> Result<Option<Value>, TemplateError> {
    match arg {
        Arg::Field(path) => lookup(data, path),
        Arg::Str(s) => Ok(Some(Value::String(s.clone()))),
        Arg::Int(n) => Ok(Some(Value::from(*n))),
        Arg::Func(f) => Err(TemplateError::Exec(format!("function {f} used as a value"))),
    }
}

fn eval_pipeline(pipeline: &[Vec<Arg>], data: &Value) -> Result<Option<Value>, TemplateError> {
    let mut piped: Option<Option<Value>> = None;
    for cmd in pipeline {
        let result = match &cmd[0] {
            Arg::Func(name) => {
                let mut args = cmd[1..]
                    .iter()
                    .map(|a| eval_arg(a, data))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(p) = piped.take() {
                    args.push(p);
                }
                call(name, args)?
            }
            other => eval_arg(other, data)?,
        };
        piped = Some(result);
    }
    Ok(piped.flatten())
}

fn as_text(v: &Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        other => go_print(other.as_ref()),
    }
}

fn arity(name: &str, args: &[Option<Value>], n: usize) -> Result<(), TemplateError> {
    if args.len() != n {
        return Err(TemplateError::Exec(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

fn call(name: &str, args: Vec<Option<Value>>) -> Result<Option<Value>, TemplateError> {
    let s = |v: String| Ok(Some(Value::String(v)));
    match name {
        "json" => {
            arity(name, &args, 1)?;
            s(go_json(args[0].as_ref().unwrap_or(&Value::Null)))
        }
        "upper" => {
            arity(name, &args, 1)?;
            s(as_text(&args[0]).to_uppercase())
        }
        "lower" => {
            arity(name, &args, 1)?;
            s(as_text(&args[0]).to_lowercase())
        }
        "title" => {
            arity(name, &args, 1)?;
            s(title_case(&as_text(&args[0])))
        }
        "len" => {
            arity(name, &args, 1)?;
            let n = match &args[0] {
                Some(Value::String(t)) => t.len(),
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(o)) => o.len(),
                other => {
                    return Err(TemplateError::Exec(format!(
                        "len of {}",
                        other.as_ref().map(type_name).unwrap_or("nothing")
                    )))
                }
            };
            Ok(Some(Value::from(n)))
        }
        "join" => {
            arity(name, &args, 2)?;
            let sep = as_text(&args[1]);
            match &args[0] {
                Some(Value::Array(items)) => s(items
                    .iter()
                    .map(|i| as_text(&Some(i.clone())))
                    .collect::<Vec<_>>()
                    .join(&sep)),
                None | Some(Value::Null) => s(String::new()),
                Some(other) => Err(TemplateError::Exec(format!("join of {}", type_name(other)))),
            }
        }
        "split" => {
            arity(name, &args, 2)?;
            let parts = as_text(&args[0])
                .split(as_text(&args[1]).as_str())
                .map(|p| Value::String(p.to_string()))
                .collect();
            Ok(Some(Value::Array(parts)))
        }
        "truncate" => {
            arity(name, &args, 2)?;
            let n = match &args[1] {
                Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
                _ => {
                    return Err(TemplateError::Exec(
                        "truncate needs an integer length".into(),
                    ))
                }
            };
            s(as_text(&args[0]).chars().take(n).collect())
        }
        "index" => {
            if args.is_empty() {
                return Err(TemplateError::Exec("index needs a value".into()));
            }
            let mut it = args.into_iter();
            let mut cur = it.next().flatten();
            for key in it {
                cur = match (cur, key) {
                    (Some(Value::Object(m)), Some(Value::String(k))) => m.get(&k).cloned(),
                    (Some(Value::Array(a)), Some(Value::Number(n))) => {
                        let i = n.as_u64().unwrap_or(u64::MAX) as usize;
                        Some(a.get(i).cloned().ok_or_else(|| {
                            TemplateError::Exec(format!("index out of range: {i}"))
                        })?)
                    }
                    (None | Some(Value::Null), _) => None,
                    (Some(v), _) => {
                        return Err(TemplateError::Exec(format!(
                            "can't index item of type {}",
                            type_name(&v)
                        )))
                    }
                };
            }
            Ok(cur)
        }
        "println" => s(format!(
            "{}\n",
            args.iter()
                .map(|a| go_print(a.as_ref()))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        other => Err(TemplateError::Exec(format!(
            "function \"{other}\" not defined"
        ))),
    }
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !c.is_alphanumeric();
    }
    out
}

/// Docker's `json` template function: compact JSON without HTML escaping.
pub fn go_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Prints a value the way Go's `fmt` prints a decoded JSON value
/// (`<no value>` for a missing key, `<nil>` for null, `[a b]`, `map[k:v]`).
pub fn go_print(v: Option<&Value>) -> String {
    match v {
        None => "<no value>".into(),
        Some(Value::Null) => "<nil>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) => format!(
            "[{}]",
            a.iter()
                .map(|i| go_print(Some(i)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Some(Value::Object(m)) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter()
                    .map(|k| format!("{k}:{}", go_print(m.get(*k))))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().execute(v).unwrap()
    }

    fn inspect() -> Value {
        json!({
            "Id": "abc",
            "State": {"Status": "exited", "ExitCode": 3, "OOMKilled": false},
            "NetworkSettings": {"IPAddress": "172.17.0.2"},
            "Config": {"Env": ["PATH=/bin", "A=1"], "Labels": {"k": "v", "a": "b"}, "Cmd": null},
        })
    }

    #[test]
    fn field_paths() {
        let v = inspect();
        assert_eq!(run("{{.State.Status}}", &v), "exited");
        assert_eq!(run("{{.State.ExitCode}}", &v), "3");
        assert_eq!(run("{{.State.OOMKilled}}", &v), "false");
        assert_eq!(run("{{.NetworkSettings.IPAddress}}", &v), "172.17.0.2");
        assert_eq!(run("id={{.Id}} {{ .State.Status }}!", &v), "id=abc exited!");
        assert_eq!(run("{{.Missing}}", &v), "<no value>");
        assert_eq!(run("{{.Config.Cmd}}", &v), "<nil>");
        assert_eq!(run("{{.Config.Env}}", &v), "[PATH=/bin A=1]");
        assert_eq!(run("{{.Config.Labels}}", &v), "map[a:b k:v]");
    }

    #[test]
    fn functions_and_pipes() {
        let v = inspect();
        assert_eq!(run("{{json .Config.Env}}", &v), "[\"PATH=/bin\",\"A=1\"]");
        assert_eq!(run("{{json .State.Status}}", &v), "\"exited\"");
        assert_eq!(run("{{join .Config.Env \",\"}}", &v), "PATH=/bin,A=1");
        assert_eq!(run("{{index .Config.Labels \"k\"}}", &v), "v");
        assert_eq!(run("{{.State.Status | upper}}", &v), "EXITED");
        assert_eq!(run("{{len .Config.Env}}", &v), "2");
        assert_eq!(run("{{truncate .Id 2}}", &v), "ab");
        assert_eq!(run("{{title \"hello world\"}}", &v), "Hello World");
        assert_eq!(run("{{/* note */}}x", &v), "x");
    }

    #[test]
    fn trimming_and_escapes() {
        let v = inspect();
        assert_eq!(run("a  {{- .Id -}}  b", &v), "aabcb");
        assert_eq!(run("{{.Id}}\\t{{.State.Status}}", &v), "abc\texited");
        let t = Template::parse("table {{.Id}}\\t{{.State.Status}}").unwrap();
        assert!(t.is_table());
        assert_eq!(t.execute(&v).unwrap(), "abc\texited");
    }

    #[test]
    fn unsupported_constructs_fail_clearly() {
        for t in [
            "{{range .Config.Env}}{{.}}{{end}}",
            "{{if .Id}}x{{end}}",
            "{{$x := 1}}",
            "{{printf \"%s\" .Id}}",
            "{{(json .Id)}}",
        ] {
            let err = Template::parse(t).unwrap_err();
            assert!(
                err.to_string().contains("unsupported template action"),
                "{t}: {err}"
            );
        }
        assert!(Template::parse("{{nope .Id}}")
            .unwrap_err()
            .to_string()
            .contains("not defined"));
        assert!(Template::parse("{{.Id").is_err());
        assert!(Template::parse("{{.Id .Id}}").is_err());
        let err = Template::parse("{{.Id.Sub}}")
            .unwrap()
            .execute(&inspect())
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("can't evaluate field Sub in type string"));
    }
}
