//! `.dockerignore`: which context paths the build never sees, with docker's rules
//! (moby's `patternmatcher`): patterns are cleaned, a leading `/` is dropped, `*` and
//! `?` stay within one path component, `**` spans any number, `!` re-includes, the
//! last matching pattern wins, and a pattern matching a directory matches everything
//! under it.
//!
//! Patterns become regular expressions as in moby (the `regex` crate does the matching).

use regex::Regex;

use crate::error::BuildFileError;

/// One pattern of a `.dockerignore` (or a COPY source glob).
#[derive(Clone, Debug)]
pub struct Pattern {
    /// The cleaned pattern text.
    pub text: String,
    /// A `!` exception.
    pub exclusion: bool,
    regex: Regex,
}

impl Pattern {
    /// Compiles one cleaned pattern (`**` spans directories when `double_star` is set).
    pub fn new(text: &str, exclusion: bool, double_star: bool) -> Result<Pattern, BuildFileError> {
        let mut re = String::from("^");
        let mut chars = text.chars().peekable();
        let mut in_class = false;
        while let Some(c) = chars.next() {
            if in_class {
                match c {
                    ']' => {
                        in_class = false;
                        re.push(']');
                    }
                    '\\' => {
                        let n = chars.next().unwrap_or('\\');
                        re.push_str(&regex::escape(&n.to_string()));
                    }
                    '-' | '^' => re.push(c),
                    other => re.push_str(&regex::escape(&other.to_string())),
                }
                continue;
            }
            match c {
                '*' if double_star && chars.peek() == Some(&'*') => {
                    chars.next();
                    if chars.peek() == Some(&'/') {
                        chars.next();
                    }
                    if chars.peek().is_none() {
                        re.push_str(".*");
                    } else {
                        re.push_str("(.*/)?");
                    }
                }
                '*' => re.push_str("[^/]*"),
                '?' => re.push_str("[^/]"),
                '\\' => match chars.next() {
                    Some(n) => re.push_str(&regex::escape(&n.to_string())),
                    None => re.push_str("\\\\"),
                },
                '[' => {
                    in_class = true;
                    re.push('[');
                }
                other => re.push_str(&regex::escape(&other.to_string())),
            }
        }
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| BuildFileError::IgnorePattern {
            pattern: text.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Pattern {
            text: text.to_owned(),
            exclusion,
            regex,
        })
    }

    /// Whether `path` (slash-separated, relative) matches this pattern itself.
    pub fn matches(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }
}

/// The patterns of a `.dockerignore`.
#[derive(Clone, Debug, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// `filepath.Clean` for slash-separated relative paths.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

impl DockerIgnore {
    /// Parses `.dockerignore` text.
    pub fn parse(text: &str) -> Result<DockerIgnore, BuildFileError> {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if body.is_empty() {
                return Err(BuildFileError::IgnorePattern {
                    pattern: line.to_owned(),
                    message: "illegal exclusion pattern: \"!\"".to_owned(),
                });
            }
            let mut cleaned = clean(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            patterns.push(Pattern::new(&cleaned, exclusion, true)?);
        }
        Ok(DockerIgnore { patterns })
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is an exception (a walk must then enter excluded directories).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether the context path `path` (relative, slash-separated) is excluded.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        let parents: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            // An exception can only change an excluded path, and the reverse.
            if pattern.exclusion != excluded {
                continue;
            }
            let mut hit = pattern.matches(&path);
            if !hit {
                hit = (1..parents.len()).any(|n| pattern.matches(&parents[..n].join("/")));
            }
            if hit {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    #[test]
    fn plain_and_directory_patterns() {
        let i = ig("# comment\nnode_modules\n/build\n*.log\n");
        assert!(i.excludes("node_modules"));
        assert!(i.excludes("node_modules/a/b.js"));
        assert!(i.excludes("build/x"));
        assert!(i.excludes("a.log"));
        assert!(!i.excludes("sub/a.log"), "* does not cross directories");
        assert!(!i.excludes("src/main.rs"));
    }

    #[test]
    fn double_star() {
        let i = ig("**/*.tmp\ndocs/**\n");
        assert!(i.excludes("a.tmp"));
        assert!(i.excludes("x/y/z.tmp"));
        assert!(i.excludes("docs/a/b"));
        assert!(!i.excludes("docsx"));
    }

    #[test]
    fn exceptions_last_match_wins() {
        let i = ig("*.md\n!README.md\nREADME*.md\n!README-keep.md\n");
        assert!(i.excludes("CHANGES.md"));
        assert!(i.excludes("README.md"));
        assert!(!i.excludes("README-keep.md"));
        let i = ig("data\n!data/keep.txt\n");
        assert!(i.excludes("data/drop.txt"));
        assert!(!i.excludes("data/keep.txt"));
        assert!(i.has_exceptions());
    }

    #[test]
    fn cleaning_and_classes() {
        let i = ig("./a/../b/\nfile[0-9].txt\nq?.c\n");
        assert!(i.excludes("b/c"));
        assert!(i.excludes("file3.txt"));
        assert!(!i.excludes("fileX.txt"));
        assert!(i.excludes("q1.c"));
        assert!(DockerIgnore::parse("!\n").is_err());
        assert_eq!(clean("/../a/./b/"), "/a/b");
        assert_eq!(clean("a/../../b"), "../b");
    }
}
