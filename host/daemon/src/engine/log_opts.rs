//! `--log-opt` of the json-file driver: `max-size` (`10m`, `512k`, `1g`, bytes) and
//! `max-file` (files kept, at least 1), as dockerd reads them. Other drivers and other
//! options are refused where dockerd's json-file driver refuses them.

use super::EngineError;
use crate::backend::LogRotation;

/// Parses `10m` etc. (binary units, as docker's `RAMInBytes`).
fn size(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &v[digits.len()..];
    let n: f64 = digits.parse().ok()?;
    let mult: u64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    (n > 0.0).then_some((n * mult as f64) as u64)
}

/// The rotation of a container's log config (`Type`, `Config`); `None` when it grows
/// without bound.
pub fn rotation<'a>(
    driver: Option<&str>,
    config: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Option<LogRotation>, EngineError> {
    match driver.unwrap_or("") {
        "" | "json-file" => {}
        other => {
            return Err(EngineError::bad_request(format!(
                "logging driver {other:?} is not supported (vmrund keeps json-file logs)"
            )))
        }
    }
    let (mut max_size, mut max_files) = (None, None);
    for (key, value) in config {
        match key {
            "max-size" => {
                max_size = Some(size(value).ok_or_else(|| {
                    EngineError::bad_request(format!("invalid value for max-size: {value}"))
                })?)
            }
            "max-file" => {
                let n: u32 = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    EngineError::bad_request(format!(
                        "invalid value for max-file: {value}: must be at least 1"
                    ))
                })?;
                max_files = Some(n);
            }
            // Accepted and without effect here, as in dockerd's json-file driver.
            "compress" | "labels" | "labels-regex" | "env" | "env-regex" | "tag" => {}
            other => {
                return Err(EngineError::bad_request(format!(
                    "unknown log opt '{other}' for json-file log driver"
                )))
            }
        }
    }
    match (max_size, max_files) {
        (Some(max_size), files) => Ok(Some(LogRotation {
            max_size,
            max_files: files.unwrap_or(1),
        })),
        (None, Some(n)) if n > 1 => Err(EngineError::bad_request(
            "max-file cannot be greater than one when max-size is not set",
        )),
        (None, _) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<LogRotation>, EngineError> {
        rotation(Some("json-file"), pairs.iter().copied())
    }

    #[test]
    fn reads_docker_log_opts() {
        assert_eq!(
            parse(&[("max-size", "10m"), ("max-file", "3")]).unwrap(),
            Some(LogRotation {
                max_size: 10 << 20,
                max_files: 3
            })
        );
        assert_eq!(
            parse(&[("max-size", "1k")]).unwrap().map(|r| r.max_files),
            Some(1)
        );
        assert_eq!(parse(&[]).unwrap(), None);
        assert!(parse(&[("max-size", "lots")]).is_err());
        assert!(parse(&[("max-file", "0"), ("max-size", "1k")]).is_err());
        assert!(parse(&[("max-file", "3")]).is_err());
        assert!(parse(&[("colour", "red")]).is_err());
        assert!(rotation(Some("syslog"), std::iter::empty()).is_err());
    }
}
