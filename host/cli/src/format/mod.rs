//! Output formatting: docker-style tables, the Go-template subset used by
//! `--format`, and human-readable times and sizes.

pub mod containers;
pub mod human;
pub mod images;
pub mod json_text;
pub mod ports;
pub mod table;
pub mod template;

pub use template::{Template, TemplateError};

/// How a listing command prints its rows, from its `--format` value.
#[derive(Debug, Clone)]
pub enum OutputFormat {
    /// `json`: one compact JSON object per line.
    Json,
    /// A Go template; `table` templates print a header and align columns.
    Template(Template),
}

impl OutputFormat {
    /// Parses `--format` (`json`, `table ...` or a template), falling back to
    /// `default` when the flag is absent or empty (`table` alone means the
    /// default table).
    pub fn parse(value: Option<&str>, default: &str) -> Result<Self, TemplateError> {
        match value.map(str::trim) {
            None | Some("") | Some("table") => Ok(Self::Template(Template::parse(default)?)),
            Some("json") => Ok(Self::Json),
            Some(t) => Ok(Self::Template(Template::parse(t)?)),
        }
    }

    /// Renders `rows` (each a JSON object of the listing's fields); `headers`
    /// maps every field name to its column title (for `table` templates), so
    /// a template naming another field fails, as docker's does.
    pub fn render(
        &self,
        rows: &[serde_json::Value],
        headers: &serde_json::Value,
    ) -> Result<String, TemplateError> {
        match self {
            Self::Json => {
                let mut out = String::new();
                for row in rows {
                    out.push_str(&json_text::go_json_html_escaped(row));
                    out.push('\n');
                }
                Ok(out)
            }
            Self::Template(t) => {
                t.check_fields(headers)?;
                let mut text = String::new();
                if t.is_table() {
                    text.push_str(&t.execute(headers)?);
                    text.push('\n');
                }
                for row in rows {
                    text.push_str(&t.execute(row)?);
                    text.push('\n');
                }
                if t.is_table() {
                    Ok(table::tabwriter(&text, 10, 3))
                } else {
                    Ok(text)
                }
            }
        }
    }
}
