//! Variable substitution in Dockerfile words as docker's shell lexer does it: quotes,
//! the escape character, `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`,
//! `${VAR:+word}`, `${VAR+word}`, `${VAR:?message}`.
//!
//! Hand-written after moby's `shell` package (`ProcessWord`, `ProcessWords`); no crate
//! implements docker's rules (shell crates expand differently: no escape character
//! choice, command substitution).

use std::collections::HashMap;
use std::iter::Peekable;
use std::str::Chars;

use crate::error::BuildFileError;

/// Variables visible to an instruction (name → value).
pub type Vars = HashMap<String, String>;

/// Expands one word: quotes removed, variables substituted, escapes applied.
pub fn expand_word(word: &str, vars: &Vars, escape: char) -> Result<String, BuildFileError> {
    let mut lexer = Lexer::new(word, vars, escape, false);
    let words = lexer.run(None)?;
    Ok(words.concat())
}

/// Expands variables only (`$NAME`, `${...}`, `\$` for a literal `$`): quotes and other
/// escapes stay as written (the body of an unquoted here-document).
pub fn expand_variables(text: &str, vars: &Vars, escape: char) -> Result<String, BuildFileError> {
    let mut lexer = Lexer::new(text, vars, escape, false);
    lexer.literal_quotes = true;
    Ok(lexer.run(None)?.concat())
}

/// Expands and splits on unquoted blanks (EXPOSE, VOLUME words, shell-form COPY).
pub fn expand_words(text: &str, vars: &Vars, escape: char) -> Result<Vec<String>, BuildFileError> {
    let mut lexer = Lexer::new(text, vars, escape, true);
    Ok(lexer
        .run(None)?
        .into_iter()
        .filter(|w| !w.is_empty())
        .collect())
}

/// Splits on unquoted blanks, keeping quotes and escapes (docker's `parseWords`, used
/// for `ENV`/`LABEL`/`ARG` pairs before each is expanded).
pub fn split_raw_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                continue;
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ => {}
        }
        word.push(c);
        if c == escape && quote != Some('\'') {
            if let Some(next) = chars.next() {
                word.push(next);
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

struct Lexer<'a> {
    chars: Peekable<Chars<'a>>,
    source: &'a str,
    vars: &'a Vars,
    escape: char,
    split: bool,
    /// Quotes are ordinary characters and only `\$` is an escape (here-documents).
    literal_quotes: bool,
}

impl<'a> Lexer<'a> {
    fn new(source: &'a str, vars: &'a Vars, escape: char, split: bool) -> Self {
        Lexer {
            chars: source.chars().peekable(),
            source,
            vars,
            escape,
            split,
            literal_quotes: false,
        }
    }

    fn error(&self, message: impl Into<String>) -> BuildFileError {
        BuildFileError::Substitution {
            word: self.source.to_owned(),
            message: message.into(),
        }
    }

    /// Reads words until the end or `stop` (consumed).
    fn run(&mut self, stop: Option<char>) -> Result<Vec<String>, BuildFileError> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut started = false;
        while let Some(c) = self.chars.next() {
            if Some(c) == stop {
                break;
            }
            if self.split && stop.is_none() && c.is_whitespace() {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
                continue;
            }
            started = true;
            if self.literal_quotes && c != '$' {
                if c == self.escape && self.chars.peek() == Some(&'$') {
                    word.push('$');
                    self.chars.next();
                } else {
                    word.push(c);
                }
                continue;
            }
            if c == '\'' {
                self.single_quoted(&mut word)?;
            } else if c == '"' {
                self.double_quoted(&mut word)?;
            } else if c == '$' {
                let value = self.dollar()?;
                if self.split && stop.is_none() {
                    // Unquoted values are split like the shell splits them.
                    for v in value.chars() {
                        if v.is_whitespace() {
                            if !word.is_empty() {
                                words.push(std::mem::take(&mut word));
                            }
                        } else {
                            word.push(v);
                        }
                    }
                } else {
                    word.push_str(&value);
                }
            } else if c == self.escape {
                if let Some(next) = self.chars.next() {
                    word.push(next);
                }
            } else {
                word.push(c);
            }
        }
        if started || words.is_empty() {
            words.push(word);
        }
        Ok(words)
    }

    fn single_quoted(&mut self, word: &mut String) -> Result<(), BuildFileError> {
        for c in self.chars.by_ref() {
            if c == '\'' {
                return Ok(());
            }
            word.push(c);
        }
        Err(self.error("unexpected end of statement while looking for matching single-quote"))
    }

    fn double_quoted(&mut self, word: &mut String) -> Result<(), BuildFileError> {
        while let Some(c) = self.chars.next() {
            if c == '"' {
                return Ok(());
            }
            if c == '$' {
                word.push_str(&self.dollar()?);
            } else if c == self.escape {
                match self.chars.peek() {
                    Some(&n) if n == '"' || n == '$' || n == self.escape => {
                        word.push(n);
                        self.chars.next();
                    }
                    Some(_) => word.push(c),
                    None => {}
                }
            } else {
                word.push(c);
            }
        }
        Err(self.error("unexpected end of statement while looking for matching double-quote"))
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(&c) = self.chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.chars.next();
            } else {
                break;
            }
        }
        name
    }

    /// After a `$`: the substitution.
    fn dollar(&mut self) -> Result<String, BuildFileError> {
        if self.chars.peek() != Some(&'{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(self.vars.get(&name).cloned().unwrap_or_default());
        }
        self.chars.next();
        let name = self.name();
        if name.is_empty() {
            return Err(self.error("bad substitution: missing variable name"));
        }
        let value = self.vars.get(&name);
        let next = self.chars.next();
        match next {
            Some('}') => Ok(value.cloned().unwrap_or_default()),
            Some(':') | Some('-') | Some('+') | Some('?') => {
                let colon = next == Some(':');
                let modifier = if colon { self.chars.next() } else { next };
                let inner = Lexer {
                    chars: std::mem::replace(&mut self.chars, "".chars().peekable()),
                    source: self.source,
                    vars: self.vars,
                    escape: self.escape,
                    split: false,
                    literal_quotes: false,
                };
                let mut inner = inner;
                let word = inner.run(Some('}'))?.concat();
                self.chars = inner.chars;
                // With a colon, an empty value counts as unset.
                let set = match value {
                    Some(v) => !(colon && v.is_empty()),
                    None => false,
                };
                match modifier {
                    Some('-') => Ok(if set {
                        value.cloned().unwrap_or_default()
                    } else {
                        word
                    }),
                    Some('+') => Ok(if set { word } else { String::new() }),
                    Some('?') if set => Ok(value.cloned().unwrap_or_default()),
                    Some('?') => Err(self.error(if word.is_empty() {
                        format!("{name}: is not allowed to be unset")
                    } else {
                        format!("{name}: {word}")
                    })),
                    other => Err(self.error(format!(
                        "unsupported modifier ({}) in substitution",
                        other.map(String::from).unwrap_or_default()
                    ))),
                }
            }
            _ => Err(self.error(format!("missing '}}' in substitution of {name}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [("A", "apple"), ("E", ""), ("SP", "x y")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn w(s: &str) -> String {
        expand_word(s, &vars(), '\\').unwrap()
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(w("$A"), "apple");
        assert_eq!(w("${A}s"), "apples");
        assert_eq!(w("$A/b"), "apple/b");
        assert_eq!(w("$NOPE-x"), "-x");
        assert_eq!(w("cost $"), "cost $");
    }

    #[test]
    fn modifiers() {
        assert_eq!(w("${NOPE:-def}"), "def");
        assert_eq!(w("${E:-def}"), "def");
        assert_eq!(w("${E-def}"), "");
        assert_eq!(w("${A:-def}"), "apple");
        assert_eq!(w("${A:+alt}"), "alt");
        assert_eq!(w("${NOPE:+alt}"), "");
        assert_eq!(w("${E+alt}"), "alt");
        assert_eq!(w("${NOPE:-$A}"), "apple");
        let e = expand_word("${NOPE:?must be set}", &vars(), '\\').unwrap_err();
        assert!(e.to_string().contains("must be set"), "{e}");
        assert!(expand_word("${A", &vars(), '\\').is_err());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A b\""), "apple b");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("\"\\$A\""), "$A");
        assert_eq!(w("\"a\\b\""), "a\\b");
        assert_eq!(w("a\\ b"), "a b");
        assert_eq!(expand_word("`$A", &vars(), '`').unwrap(), "$A");
        assert!(expand_word("'open", &vars(), '\\').is_err());
    }

    #[test]
    fn variables_only_keep_quotes() {
        let out = expand_variables("k=\"$A\" 'x' \\$A c:\\d ${E:-e}\n", &vars(), '\\').unwrap();
        assert_eq!(out, "k=\"apple\" 'x' $A c:\\d e\n");
    }

    #[test]
    fn words_split_on_unquoted_blanks() {
        let words = expand_words("80/tcp  $SP \"a b\" ${A}", &vars(), '\\').unwrap();
        assert_eq!(words, vec!["80/tcp", "x", "y", "a b", "apple"]);
    }

    #[test]
    fn raw_words_keep_quotes() {
        assert_eq!(
            split_raw_words("a=\"x y\" b='c d' e=f\\ g", '\\'),
            vec!["a=\"x y\"", "b='c d'", "e=f\\ g"]
        );
    }
}
