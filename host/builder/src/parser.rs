//! The Dockerfile's lines: parser directives, comments, line continuations, and the
//! split of each logical line into instruction, `--flags` and arguments.
//!
//! Hand-written after moby's `parser` package (the Rust crates on crates.io that parse
//! Dockerfiles are unmaintained or miss directives and continuations as docker has
//! them); every rule here has a unit test below.

use crate::error::BuildFileError;
use crate::heredoc::{read_bodies, Heredoc};

/// One logical line: an instruction with its flags and raw arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number of the instruction's first physical line.
    pub line: usize,
    /// The instruction in upper case (`RUN`).
    pub instruction: String,
    /// `--name=value` flags before the arguments, in order (a bare `--name` has "").
    pub flags: Vec<(String, String)>,
    /// The rest of the line after the flags, trimmed (not expanded).
    pub args: String,
    /// The logical line as written, continuations joined (docker prints it in `Step`).
    pub original: String,
    /// Here-documents the line opens (RUN, COPY, ADD), in order.
    pub heredocs: Vec<Heredoc>,
}

/// A parsed Dockerfile: its escape character and its logical lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// `\` unless `# escape=` said `` ` ``.
    pub escape: char,
    /// The instructions in order.
    pub lines: Vec<Line>,
}

/// Instructions whose leading `--flags` are split off.
const TAKES_FLAGS: [&str; 5] = ["FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"];

/// Every instruction docker knows.
pub const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Parses Dockerfile text.
pub fn parse(text: &str) -> Result<Parsed, BuildFileError> {
    let physical: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut start = 0;
    // Parser directives: only at the very top, before any comment, blank line or instruction.
    while let Some(raw) = physical.get(start) {
        match directive(raw) {
            Some((name, value)) if name == "escape" => {
                escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(BuildFileError::syntax(
                            start + 1,
                            format!("invalid ESCAPE '{other}'. Must be ` or \\"),
                        ))
                    }
                };
            }
            Some((name, _)) if name == "syntax" || name == "check" => {}
            _ => break,
        }
        start += 1;
    }
    let mut lines = Vec::new();
    let mut i = start;
    while i < physical.len() {
        let first = i;
        let text = physical[i].trim_start();
        i += 1;
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let mut logical = String::new();
        let mut part = text.to_owned();
        loop {
            match strip_continuation(&part, escape) {
                Some(body) => {
                    logical.push_str(body);
                    // The next physical line that is neither blank nor a comment continues it.
                    let mut next = None;
                    while i < physical.len() {
                        let candidate = physical[i].trim_start();
                        i += 1;
                        if candidate.is_empty() || candidate.starts_with('#') {
                            continue;
                        }
                        // Continuation lines keep their leading blanks, as in docker.
                        next = Some(physical[i - 1].to_owned());
                        break;
                    }
                    match next {
                        Some(n) => part = n,
                        None => break,
                    }
                }
                None => {
                    logical.push_str(&part);
                    break;
                }
            }
        }
        let mut line = split_line(first + 1, &logical)?;
        if matches!(line.instruction.as_str(), "RUN" | "COPY" | "ADD") {
            line.heredocs = read_bodies(&line.args, &physical, &mut i, line.line)?;
        }
        lines.push(line);
    }
    Ok(Parsed { escape, lines })
}

/// `# name=value` at the top of the file.
fn directive(raw: &str) -> Option<(String, String)> {
    let rest = raw.trim().strip_prefix('#')?;
    let (name, value) = rest.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.trim().to_owned()))
}

/// The line without its trailing escape character (and the blanks after it), if it has one.
fn strip_continuation(line: &str, escape: char) -> Option<&str> {
    let trimmed = line.trim_end_matches([' ', '\t', '\r']);
    trimmed.strip_suffix(escape)
}

/// Splits a logical line into instruction, flags and arguments.
fn split_line(line: usize, logical: &str) -> Result<Line, BuildFileError> {
    let logical = logical.trim_end_matches(['\r']).trim();
    let (word, rest) = match logical.split_once(|c: char| c.is_whitespace()) {
        Some((w, r)) => (w, r.trim_start()),
        None => (logical, ""),
    };
    let instruction = word.to_ascii_uppercase();
    if !INSTRUCTIONS.contains(&instruction.as_str()) {
        return Err(BuildFileError::syntax(
            line,
            format!("unknown instruction: {}", word.to_ascii_uppercase()),
        ));
    }
    let mut flags = Vec::new();
    let mut args = rest;
    if TAKES_FLAGS.contains(&instruction.as_str()) {
        while let Some(flag) = args.strip_prefix("--") {
            let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
            let (name, value) = match flag[..end].split_once('=') {
                Some((n, v)) => (n, v),
                None => (&flag[..end], ""),
            };
            if name.is_empty() {
                break;
            }
            flags.push((name.to_ascii_lowercase(), value.to_owned()));
            args = flag[end..].trim_start();
        }
    }
    Ok(Line {
        line,
        instruction,
        flags,
        args: args.trim().to_owned(),
        original: logical.to_owned(),
        heredocs: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_continuations_and_skips_comments() {
        let p = parse(
            "FROM busybox\n# a comment\nRUN echo a \\\n  # inner comment\n\n  b\nCMD [\"sh\"]\n",
        )
        .unwrap();
        assert_eq!(p.lines.len(), 3);
        assert_eq!(p.lines[1].instruction, "RUN");
        assert_eq!(p.lines[1].args, "echo a   b");
        assert_eq!(p.lines[1].line, 3);
        assert_eq!(p.lines[2].line, 7);
        assert_eq!(p.lines[1].original, "RUN echo a   b");
    }

    #[test]
    fn escape_directive_changes_the_continuation() {
        let p = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  /b\n").unwrap();
        assert_eq!(p.escape, '`');
        assert_eq!(p.lines[1].args, "dir c:\\   /b");
        let e = parse("# escape=x\nFROM x\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn directives_only_at_the_top() {
        let p =
            parse("# syntax=docker/dockerfile:1\n\n# escape=`\nFROM x\nRUN a \\\n b\n").unwrap();
        assert_eq!(p.escape, '\\');
        assert_eq!(p.lines[1].args, "a  b");
    }

    #[test]
    fn flags_are_split_off() {
        let p = parse("COPY --from=build --chown=1:2 /a /b\nRUN --network=none true\n").unwrap();
        assert_eq!(
            p.lines[0].flags,
            vec![
                ("from".into(), "build".into()),
                ("chown".into(), "1:2".into())
            ]
        );
        assert_eq!(p.lines[0].args, "/a /b");
        assert_eq!(p.lines[1].flags, vec![("network".into(), "none".into())]);
    }

    #[test]
    fn unknown_instruction_names_the_line() {
        let e = parse("FROM busybox\n\nFOO bar\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Dockerfile parse error line 3: unknown instruction: FOO"
        );
    }

    #[test]
    fn lower_case_instructions_and_crlf() {
        let p = parse("from busybox\r\nrun true\r\n").unwrap();
        assert_eq!(p.lines[1].instruction, "RUN");
        assert_eq!(p.lines[1].args, "true");
    }
}
