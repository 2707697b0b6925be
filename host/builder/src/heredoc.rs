//! Here-documents in RUN, COPY and ADD (Dockerfile syntax 1.4, as BuildKit reads them):
//! `<<NAME` (`<<-NAME` strips leading tabs; a quoted `<<"NAME"` or `<<'NAME'` is not
//! expanded) takes the following lines up to a line `NAME` as its content.
//!
//! Markers are found only as `<<` followed by an optional `-`, an optional quote and a
//! name starting with a letter or `_`, so shell arithmetic such as `$((1<<2))` is not one.

use crate::error::BuildFileError;

/// One here-document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    /// The marker's name (`EOF`); a COPY of it makes a file of this name.
    pub name: String,
    /// The lines between the marker and the terminator, each ending in `\n`.
    pub content: String,
    /// Whether variables in it are expanded (the marker was not quoted).
    pub expand: bool,
}

/// A marker found in an instruction's text.
#[derive(Debug, PartialEq, Eq)]
struct Marker {
    name: String,
    strip_tabs: bool,
    quoted: bool,
}

/// The here-document markers in `text`, in order.
fn markers(text: &str) -> Vec<Marker> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(pos) = text[at..].find("<<") {
        let mut i = at + pos + 2;
        at = i;
        let strip_tabs = bytes.get(i) == Some(&b'-');
        if strip_tabs {
            i += 1;
        }
        let quote = bytes.get(i).copied().filter(|q| *q == b'"' || *q == b'\'');
        if quote.is_some() {
            i += 1;
        }
        let start = i;
        if !bytes
            .get(i)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        {
            continue;
        }
        while bytes
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            i += 1;
        }
        let name = text[start..i].to_owned();
        if let Some(q) = quote {
            if bytes.get(i) != Some(&q) {
                continue;
            }
            i += 1;
        }
        at = i;
        found.push(Marker {
            name,
            strip_tabs,
            quoted: quote.is_some(),
        });
    }
    found
}

/// Reads the bodies of the here-documents `text` opens from `lines[*next..]`, moving
/// `*next` past them. `line` (1-based) names the instruction in errors.
pub fn read_bodies(
    text: &str,
    lines: &[&str],
    next: &mut usize,
    line: usize,
) -> Result<Vec<Heredoc>, BuildFileError> {
    let mut docs = Vec::new();
    for marker in markers(text) {
        let mut content = String::new();
        let mut closed = false;
        while *next < lines.len() {
            let raw = lines[*next].trim_end_matches('\r');
            *next += 1;
            let body = if marker.strip_tabs {
                raw.trim_start_matches('\t')
            } else {
                raw
            };
            if body == marker.name {
                closed = true;
                break;
            }
            content.push_str(body);
            content.push('\n');
        }
        if !closed {
            return Err(BuildFileError::syntax(
                line,
                format!(
                    "unterminated heredoc {}: no line {} ends it",
                    marker.name, marker.name
                ),
            ));
        }
        docs.push(Heredoc {
            name: marker.name,
            content,
            expand: !marker.quoted,
        });
    }
    Ok(docs)
}

/// Whether `word` is a here-document marker (a COPY source such as `<<EOF`).
pub fn marker_name(word: &str) -> Option<String> {
    let m = markers(word);
    (m.len() == 1 && word.starts_with("<<")).then(|| m[0].name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_markers_but_not_shifts() {
        let names: Vec<String> = markers("cat <<EOF > a && cat <<-'X_1' | sh; echo $((1<<2)) << 3")
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, vec!["EOF", "X_1"]);
        assert!(markers("<<\"Q\"")[0].quoted);
        assert!(markers("<<-T")[0].strip_tabs);
        assert_eq!(marker_name("<<EOF").as_deref(), Some("EOF"));
        assert_eq!(marker_name("file.txt"), None);
    }

    #[test]
    fn reads_bodies_in_order() {
        let lines = ["one", "EOF", "\ttabbed", "\tEND", "after"];
        let mut next = 0;
        let docs = read_bodies("x <<EOF && y <<-END", &lines, &mut next, 3).unwrap();
        assert_eq!(docs[0].content, "one\n");
        assert_eq!(docs[1].content, "tabbed\n");
        assert_eq!(next, 4);
        let mut next = 0;
        let e = read_bodies("<<NEVER", &lines, &mut next, 7).unwrap_err();
        assert!(e.to_string().contains("line 7"), "{e}");
    }
}
