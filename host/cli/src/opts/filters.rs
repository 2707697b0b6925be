//! `--filter KEY=VALUE` flags of the listing commands.

use std::collections::HashMap;

use crate::error::{CliError, CliResult};

/// Parses `--filter KEY=VALUE` flags into the API's filter map.
pub fn parse_filters(values: &[String]) -> CliResult<HashMap<String, Vec<String>>> {
    let mut filters: HashMap<String, Vec<String>> = HashMap::new();
    for value in values {
        let Some((key, v)) = value.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(CliError::usage(format!(
                "invalid argument \"{value}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"
            )));
        };
        filters
            .entry(key.trim().to_lowercase())
            .or_default()
            .push(v.trim().to_string());
    }
    Ok(filters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_group_by_key() {
        let f =
            parse_filters(&["name=web".into(), "status=exited".into(), "name=db".into()]).unwrap();
        assert_eq!(f["name"], ["web", "db"]);
        assert_eq!(f["status"], ["exited"]);
        let err = parse_filters(&["nokey".into()]).unwrap_err();
        assert_eq!(err.code, 125);
        assert!(err.message.unwrap().contains("bad format of filter"));
    }
}
