//! Typed query strings: each endpoint names its parameters in a struct and takes it with
//! [`DockerQuery`], so a value of the wrong type is a 400 in docker's JSON error form
//! (axum's own `Query` answers in plain text), and docker's booleans are read one way
//! everywhere ([`docker_bool`], [`docker_bool_default_true`]). Unknown parameters are
//! ignored, as dockerd ignores them.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::ApiError;

/// An endpoint's query parameters as `T`.
pub struct DockerQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for DockerQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| DockerQuery(q))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
    }
}

/// The parameter of the routes that only take `filters` (the prunes).
#[derive(Deserialize)]
pub struct FiltersQuery {
    /// docker's JSON filters.
    pub filters: Option<String>,
}

/// dockerd's `BoolValue`: a parameter is true unless it is absent, empty, `0`, `no`,
/// `false` or `none` (any case, blanks trimmed).
pub fn bool_value(v: Option<&str>) -> bool {
    match v {
        None => false,
        Some(v) => !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        ),
    }
}

/// A boolean parameter as dockerd reads it ([`bool_value`]); use with
/// `#[serde(default, deserialize_with = "docker_bool")]`.
pub fn docker_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(bool_value(raw.as_deref()))
}

/// A boolean parameter that is true when absent (dockerd's `BoolValueOrDefault(.., true)`,
/// as `rm` of a build or `pause` of a commit); use with
/// `#[serde(default = "yes", deserialize_with = "docker_bool_default_true")]`.
pub fn docker_bool_default_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw.is_none_or(|v| bool_value(Some(&v))))
}

/// `true`, for `#[serde(default = "...")]`.
pub fn yes() -> bool {
    true
}

/// A string parameter that counts only when not empty (`?tag=` is no tag).
pub fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Sample {
        #[serde(default, deserialize_with = "docker_bool")]
        all: bool,
        #[serde(default = "yes", deserialize_with = "docker_bool_default_true")]
        rm: bool,
        #[serde(default, deserialize_with = "non_empty")]
        tag: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
    }

    fn parse(q: &str) -> Result<Sample, ApiError> {
        let uri: axum::http::Uri = format!("/x?{q}").parse().unwrap();
        Query::<Sample>::try_from_uri(&uri)
            .map(|Query(s)| s)
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }

    #[test]
    fn booleans_read_as_dockerd_reads_them() {
        for (v, want) in [
            ("1", true),
            ("true", true),
            ("True", true),
            ("yes", true),
            ("2", true),
            ("on", true),
            ("", false),
            ("0", false),
            ("no", false),
            ("FALSE", false),
            ("none", false),
        ] {
            assert_eq!(parse(&format!("all={v}")).unwrap().all, want, "all={v}");
        }
        let s = parse("").unwrap();
        assert!(!s.all && s.rm && s.tag.is_none() && s.limit.is_none());
        assert!(!parse("rm=0").unwrap().rm);
        assert!(parse("rm=1").unwrap().rm);
    }

    #[test]
    fn empty_strings_are_absent_and_bad_numbers_refused() {
        assert_eq!(parse("tag=").unwrap().tag, None);
        assert_eq!(
            parse("tag=v1&unknown=x").unwrap().tag.as_deref(),
            Some("v1")
        );
        assert_eq!(parse("limit=5").unwrap().limit, Some(5));
        assert!(parse("limit=five").is_err());
    }
}
