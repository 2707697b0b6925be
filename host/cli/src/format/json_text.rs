//! Re-indenting JSON text without reordering its keys, so `inspect`
//! prints fields in the daemon's order, as docker does.

/// Indents one JSON document like Go's `json.MarshalIndent(v, prefix, indent)`:
/// `{}`/`[]` stay on one line and `": "` separates keys and values.
/// `raw` must be valid JSON (whitespace outside strings is dropped).
pub fn indent(raw: &str, prefix: &str, unit: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = raw.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(prefix);
        for _ in 0..depth {
            out.push_str(unit);
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                let close = if c == '{' { '}' } else { ']' };
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(c);
                    out.push(close);
                } else {
                    out.push(c);
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// Removes insignificant whitespace from JSON text.
pub fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// A JSON array of the given documents, indented with 4 spaces like
/// `docker inspect`.
pub fn pretty_array(docs: &[String]) -> String {
    if docs.is_empty() {
        return "[]".into();
    }
    let joined = format!(
        "[{}]",
        docs.iter()
            .map(|d| compact(d))
            .collect::<Vec<_>>()
            .join(",")
    );
    indent(&joined, "", "    ")
}

/// `json.Marshal` output: like `go_json`, with `<`, `>`, `&`, U+2028 and
/// U+2029 escaped as `\u003c`... (what `--format json` rows print).
pub fn go_json_html_escaped(v: &serde_json::Value) -> String {
    let text = super::template::go_json(v);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_go_layout() {
        let raw = r#"{"Z":1, "A":{"b":[1,2],"e":[],"o":{}}, "s":"a, b: {c}\"x"}"#;
        assert_eq!(
            indent(raw, "", "    "),
            "{\n    \"Z\": 1,\n    \"A\": {\n        \"b\": [\n            1,\n            2\n        ],\n        \"e\": [],\n        \"o\": {}\n    },\n    \"s\": \"a, b: {c}\\\"x\"\n}"
        );
        assert_eq!(
            compact(raw),
            r#"{"Z":1,"A":{"b":[1,2],"e":[],"o":{}},"s":"a, b: {c}\"x"}"#
        );
        assert_eq!(pretty_array(&[]), "[]");
        assert_eq!(
            pretty_array(&["{\"a\": 1}\n".into()]),
            "[\n    {\n        \"a\": 1\n    }\n]"
        );
    }
}
