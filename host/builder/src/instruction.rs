//! Typed Dockerfile instructions from parsed [`Line`]s, arguments still unexpanded (the
//! builder expands them with the variables in force at each step), and their grouping
//! into build stages.

use crate::error::BuildFileError;
use crate::parser::{parse, Line};
use crate::shell::split_raw_words;

/// `RUN`, `CMD`, `ENTRYPOINT`: exec form (a JSON array) or shell form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `["a", "b"]`: run as is.
    Exec(Vec<String>),
    /// `a b`: run by the stage's `SHELL` (`/bin/sh -c`).
    Shell(String),
}

/// `COPY`/`ADD` arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyArgs {
    /// Sources (unexpanded), in the context or in `from`.
    pub sources: Vec<String>,
    /// Destination (unexpanded).
    pub dest: String,
    /// `--from=stage|image`.
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=octal`.
    pub chmod: Option<String>,
    /// Here-documents named by `<<NAME` sources: each becomes a file `NAME`.
    pub heredocs: Vec<crate::heredoc::Heredoc>,
}

/// `HEALTHCHECK` arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", cmd]`.
    pub test: Vec<String>,
    /// Durations in nanoseconds (0 when not given, as docker stores it).
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub retries: i64,
}

/// One instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run {
        command: Command,
        network: Option<String>,
    },
    Cmd(Command),
    Entrypoint(Command),
    Copy(CopyArgs),
    Add(CopyArgs),
    /// Raw `(key, value)` words, each expanded separately.
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    /// Names with their raw default values.
    Arg(Vec<(String, Option<String>)>),
    Workdir(String),
    User(String),
    /// Raw text, split into words when expanded.
    Expose(String),
    /// Exec-form list, or raw text split into words when expanded.
    Volume(Command),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
    /// The trigger instruction's text (`RUN echo hi`).
    Onbuild(String),
    Maintainer(String),
}

/// An instruction with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// 1-based line number.
    pub line: usize,
    /// The line as written (printed as `Step N/M : <original>`).
    pub original: String,
    pub instruction: Instruction,
}

/// A parsed Dockerfile: ARGs before the first FROM, then the stages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dockerfile {
    /// `\` or `` ` ``.
    pub escape: char,
    /// ARG instructions before the first FROM (only FROM lines see them).
    pub meta_args: Vec<Step>,
    /// Build stages in order; each begins with its FROM.
    pub stages: Vec<Stage>,
}

/// One build stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// `AS name`, lower-cased as docker compares them.
    pub name: Option<String>,
    /// The FROM step first, then the rest.
    pub steps: Vec<Step>,
}

impl Dockerfile {
    /// Parses Dockerfile text into stages.
    pub fn parse(text: &str) -> Result<Dockerfile, BuildFileError> {
        let parsed = parse(text)?;
        if parsed.lines.is_empty() {
            return Err(BuildFileError::Empty);
        }
        let mut file = Dockerfile {
            escape: parsed.escape,
            meta_args: Vec::new(),
            stages: Vec::new(),
        };
        for line in &parsed.lines {
            let instruction = typed(line, parsed.escape)?;
            let step = Step {
                line: line.line,
                original: line.original.clone(),
                instruction,
            };
            match (&step.instruction, file.stages.last_mut()) {
                (Instruction::From { name, .. }, _) => file.stages.push(Stage {
                    name: name.clone(),
                    steps: vec![step],
                }),
                (_, Some(stage)) => stage.steps.push(step),
                (Instruction::Arg(_), None) => file.meta_args.push(step),
                (_, None) => {
                    return Err(BuildFileError::syntax(
                        line.line,
                        "no build stage in current context",
                    ))
                }
            }
        }
        if file.stages.is_empty() {
            return Err(BuildFileError::syntax(
                parsed.lines[0].line,
                "no build stage in current context",
            ));
        }
        Ok(file)
    }

    /// The number of steps docker counts in `Step N/M` (meta ARGs included).
    pub fn step_count(&self) -> usize {
        self.meta_args.len() + self.stages.iter().map(|s| s.steps.len()).sum::<usize>()
    }
}

fn flag<'a>(line: &'a Line, name: &str) -> Option<&'a str> {
    line.flags
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Refuses flags not in `allowed`, as dockerd does (`Unknown flag: mount`), saying when
/// the flag is one of BuildKit's.
fn check_flags(line: &Line, allowed: &[&str]) -> Result<(), BuildFileError> {
    const BUILDKIT: [&str; 6] = [
        "mount",
        "security",
        "parents",
        "exclude",
        "checksum",
        "keep-git-dir",
    ];
    for (name, _) in &line.flags {
        if !allowed.contains(&name.as_str()) {
            let hint = if BUILDKIT.contains(&name.as_str()) {
                format!(" ({} --{name} is a BuildKit feature)", line.instruction)
            } else {
                String::new()
            };
            return Err(BuildFileError::syntax(
                line.line,
                format!("Unknown flag: {name}{hint}"),
            ));
        }
    }
    Ok(())
}

/// A JSON array of strings, if `args` is one.
fn json_list(args: &str) -> Option<Vec<String>> {
    if !args.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(args).ok()
}

fn command(args: &str) -> Command {
    match json_list(args) {
        Some(list) => Command::Exec(list),
        None => Command::Shell(args.to_owned()),
    }
}

/// RUN's command; here-documents as BuildKit runs them: `RUN <<EOF` runs the body as a
/// shell script; otherwise the bodies follow the command, for the shell to read.
fn run_command(line: &Line) -> Command {
    if line.heredocs.is_empty() {
        return command(&line.args);
    }
    if crate::heredoc::marker_name(line.args.trim()).is_some() && line.heredocs.len() == 1 {
        return Command::Shell(line.heredocs[0].content.clone());
    }
    let mut text = line.args.clone();
    for doc in &line.heredocs {
        text.push('\n');
        text.push_str(&doc.content);
        text.push_str(&doc.name);
    }
    Command::Shell(text)
}

fn require_args(line: &Line) -> Result<(), BuildFileError> {
    if line.args.is_empty() {
        return Err(BuildFileError::syntax(
            line.line,
            format!("{} requires at least one argument", line.instruction),
        ));
    }
    Ok(())
}

/// `k=v k2="v 2"` or the legacy `k v w`.
fn name_values(line: &Line, escape: char) -> Result<Vec<(String, String)>, BuildFileError> {
    require_args(line)?;
    let words = split_raw_words(&line.args, escape);
    let first = words.first().map(String::as_str).unwrap_or("");
    if !first.contains('=') {
        // Legacy single pair: the rest of the line is the value.
        let value = line.args[first.len()..].trim().to_owned();
        if value.is_empty() && line.instruction == "ENV" {
            return Err(BuildFileError::syntax(
                line.line,
                "ENV must have two arguments",
            ));
        }
        return Ok(vec![(first.to_owned(), value)]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(BuildFileError::syntax(
                line.line,
                format!("{}: invalid name=value pair {w:?}", line.instruction),
            )),
        })
        .collect()
}

/// Go-style durations (`30s`, `1m30s`, `500ms`) in nanoseconds.
fn duration(line: &Line, name: &str) -> Result<i64, BuildFileError> {
    let Some(text) = flag(line, name).filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    parse_go_duration(text).ok_or_else(|| {
        BuildFileError::syntax(line.line, format!("invalid --{name} duration {text:?}"))
    })
}

/// A Go duration (`1h2m3.5s`, `300ms`, `0`) in nanoseconds; `None` when it is not one.
/// Shared with the CLI's `--health-*` flags.
pub fn parse_go_duration(text: &str) -> Option<i64> {
    if text == "0" {
        return Some(0);
    }
    if text.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Some(total as i64)
}

fn healthcheck(line: &Line) -> Result<Healthcheck, BuildFileError> {
    require_args(line)?;
    let (kind, rest) = match line.args.split_once(char::is_whitespace) {
        Some((k, r)) => (k.to_ascii_uppercase(), r.trim()),
        None => (line.args.to_ascii_uppercase(), ""),
    };
    let test = match kind.as_str() {
        "NONE" if rest.is_empty() && line.flags.is_empty() => vec!["NONE".to_owned()],
        "NONE" => {
            return Err(BuildFileError::syntax(
                line.line,
                "HEALTHCHECK NONE takes no arguments",
            ))
        }
        "CMD" if !rest.is_empty() => match command(rest) {
            Command::Exec(list) => std::iter::once("CMD".to_owned()).chain(list).collect(),
            Command::Shell(s) => vec!["CMD-SHELL".to_owned(), s],
        },
        _ => {
            return Err(BuildFileError::syntax(
                line.line,
                "Unknown type in HEALTHCHECK (try CMD)",
            ))
        }
    };
    check_flags(
        line,
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
    )?;
    let retries = match flag(line, "retries").filter(|r| !r.is_empty()) {
        Some(r) => r.parse().map_err(|_| {
            BuildFileError::syntax(line.line, format!("invalid --retries value {r:?}"))
        })?,
        None => 0,
    };
    Ok(Healthcheck {
        test,
        interval: duration(line, "interval")?,
        timeout: duration(line, "timeout")?,
        start_period: duration(line, "start-period")?,
        retries,
    })
}

fn copy_args(line: &Line, escape: char) -> Result<CopyArgs, BuildFileError> {
    // `--link` only changes how BuildKit stores the layer: accepted, same result here.
    check_flags(line, &["chown", "chmod", "from", "link"])?;
    let mut words = match json_list(&line.args) {
        Some(list) => list,
        None => split_raw_words(&line.args, escape),
    };
    if words.len() < 2 {
        return Err(BuildFileError::syntax(
            line.line,
            format!("{} requires at least two arguments", line.instruction),
        ));
    }
    let dest = words.pop().unwrap_or_default();
    Ok(CopyArgs {
        sources: words,
        dest,
        from: flag(line, "from").map(str::to_owned),
        chown: flag(line, "chown").map(str::to_owned),
        chmod: flag(line, "chmod").map(str::to_owned),
        heredocs: line.heredocs.clone(),
    })
}

fn single(line: &Line) -> Result<String, BuildFileError> {
    require_args(line)?;
    Ok(line.args.clone())
}

fn typed(line: &Line, escape: char) -> Result<Instruction, BuildFileError> {
    let i = line.instruction.as_str();
    if !matches!(i, "FROM" | "RUN" | "COPY" | "ADD" | "HEALTHCHECK") && !line.flags.is_empty() {
        return Err(BuildFileError::syntax(line.line, "unexpected flags"));
    }
    Ok(match i {
        "FROM" => {
            check_flags(line, &["platform"])?;
            let words: Vec<&str> = line.args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_] => None,
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_ascii_lowercase()),
                _ => {
                    return Err(BuildFileError::syntax(
                        line.line,
                        "FROM requires either one or three arguments",
                    ))
                }
            };
            Instruction::From {
                image: words[0].to_owned(),
                name,
                platform: flag(line, "platform").map(str::to_owned),
            }
        }
        "RUN" => {
            check_flags(line, &["network"])?;
            require_args(line)?;
            Instruction::Run {
                command: run_command(line),
                network: flag(line, "network").map(str::to_owned),
            }
        }
        "CMD" => Instruction::Cmd(command(&line.args)),
        "ENTRYPOINT" => Instruction::Entrypoint(command(&line.args)),
        "COPY" => Instruction::Copy(copy_args(line, escape)?),
        "ADD" => Instruction::Add(copy_args(line, escape)?),
        "ENV" => Instruction::Env(name_values(line, escape)?),
        "LABEL" => Instruction::Label(name_values(line, escape)?),
        "ARG" => {
            require_args(line)?;
            Instruction::Arg(
                split_raw_words(&line.args, escape)
                    .into_iter()
                    .map(|w| match w.split_once('=') {
                        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                        None => (w, None),
                    })
                    .collect(),
            )
        }
        "WORKDIR" => Instruction::Workdir(single(line)?),
        "USER" => Instruction::User(single(line)?),
        "EXPOSE" => Instruction::Expose(single(line)?),
        "VOLUME" => {
            require_args(line)?;
            Instruction::Volume(command(&line.args))
        }
        "STOPSIGNAL" => Instruction::StopSignal(single(line)?),
        "HEALTHCHECK" => Instruction::Healthcheck(healthcheck(line)?),
        "SHELL" => match json_list(&line.args) {
            Some(list) if !list.is_empty() => Instruction::Shell(list),
            _ => {
                return Err(BuildFileError::syntax(
                    line.line,
                    "SHELL requires the arguments to be in JSON form",
                ))
            }
        },
        "ONBUILD" => {
            let trigger = single(line)?;
            let inner = parse(&trigger)?;
            let first = inner.lines.first().map(|l| l.instruction.as_str());
            match first {
                Some("ONBUILD") => {
                    return Err(BuildFileError::syntax(
                        line.line,
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ))
                }
                Some("FROM" | "MAINTAINER") => {
                    return Err(BuildFileError::syntax(
                        line.line,
                        format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            first.unwrap_or("")
                        ),
                    ))
                }
                _ => {}
            }
            Instruction::Onbuild(trigger)
        }
        "MAINTAINER" => Instruction::Maintainer(single(line)?),
        other => {
            return Err(BuildFileError::syntax(
                line.line,
                format!("unknown instruction: {other}"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_and_meta_args() {
        let f = Dockerfile::parse(
            "ARG BASE=busybox\nFROM $BASE AS Build\nRUN true\nFROM busybox\nCOPY --from=build /a /b\n",
        )
        .unwrap();
        assert_eq!(f.meta_args.len(), 1);
        assert_eq!(f.stages.len(), 2);
        assert_eq!(f.stages[0].name.as_deref(), Some("build"));
        assert_eq!(f.step_count(), 5);
        match &f.stages[1].steps[1].instruction {
            Instruction::Copy(c) => {
                assert_eq!(c.from.as_deref(), Some("build"));
                assert_eq!(c.sources, vec!["/a"]);
                assert_eq!(c.dest, "/b");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn instruction_before_from_is_refused() {
        let e = Dockerfile::parse("RUN true\nFROM busybox\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn forms() {
        let f = Dockerfile::parse(
            "FROM x\nCMD [\"a\", \"b\"]\nENTRYPOINT echo hi\nRUN [not json\nENV A=1 B=\"2 3\"\nENV C d e\nLABEL a=b\nARG X Y=2\n",
        )
        .unwrap();
        let s: Vec<_> = f.stages[0].steps.iter().map(|s| &s.instruction).collect();
        assert_eq!(
            *s[1],
            Instruction::Cmd(Command::Exec(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            *s[2],
            Instruction::Entrypoint(Command::Shell("echo hi".into()))
        );
        assert!(
            matches!(s[3], Instruction::Run { command: Command::Shell(c), .. } if c == "[not json")
        );
        assert_eq!(
            *s[4],
            Instruction::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"2 3\"".into())
            ])
        );
        assert_eq!(*s[5], Instruction::Env(vec![("C".into(), "d e".into())]));
        assert_eq!(
            *s[7],
            Instruction::Arg(vec![("X".into(), None), ("Y".into(), Some("2".into()))])
        );
    }

    #[test]
    fn heredocs_in_run_and_copy() {
        let f = Dockerfile::parse(
            "FROM x\nRUN <<EOF\necho a\necho b\nEOF\nRUN cat <<'X' > /f\n$HOME\nX\nCOPY <<conf /etc/app.conf\nkey=$V\nconf\nCMD [\"true\"]\n",
        )
        .unwrap();
        let s: Vec<_> = f.stages[0].steps.iter().map(|s| &s.instruction).collect();
        assert_eq!(
            *s[1],
            Instruction::Run {
                command: Command::Shell("echo a\necho b\n".into()),
                network: None
            }
        );
        assert_eq!(
            *s[2],
            Instruction::Run {
                command: Command::Shell("cat <<'X' > /f\n$HOME\nX".into()),
                network: None
            }
        );
        match s[3] {
            Instruction::Copy(c) => {
                assert_eq!(c.sources, vec!["<<conf"]);
                assert_eq!(c.heredocs[0].content, "key=$V\n");
                assert!(c.heredocs[0].expand);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn healthcheck_forms() {
        let f = Dockerfile::parse(
            "FROM x\nHEALTHCHECK --interval=1m30s --retries=3 CMD wget -q localhost\nHEALTHCHECK NONE\n",
        )
        .unwrap();
        match &f.stages[0].steps[1].instruction {
            Instruction::Healthcheck(h) => {
                assert_eq!(h.test, vec!["CMD-SHELL", "wget -q localhost"]);
                assert_eq!(h.interval, 90_000_000_000);
                assert_eq!(h.retries, 3);
            }
            other => panic!("{other:?}"),
        }
        assert!(Dockerfile::parse("FROM x\nHEALTHCHECK --interval=zz CMD true\n").is_err());
    }

    #[test]
    fn bad_lines_name_their_line() {
        for (text, line) in [
            ("FROM x\nCOPY onlyone\n", 2),
            ("FROM x\n\nSHELL sh -c\n", 3),
            ("FROM x\nONBUILD ONBUILD RUN true\n", 2),
            ("FROM x y\n", 1),
            ("FROM x\nENV\n", 2),
            ("FROM x\nRUN --mount=type=cache,target=/c true\n", 2),
            ("FROM x\n\nCOPY --parents a/ /b\n", 3),
        ] {
            let e = Dockerfile::parse(text).unwrap_err();
            assert!(
                e.to_string().contains(&format!("line {line}:")),
                "{text:?}: {e}"
            );
        }
    }
}
