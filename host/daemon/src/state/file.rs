//! The on-disk form of a record: `container.json`, a JSON object with `"version": N`
//! next to the record's fields. Files of earlier versions are migrated when read; files
//! of a later version are refused, never rewritten.

use serde::Serialize;
use serde_json::Value;

use super::migrate;
use super::record::ContainerRecord;

/// The version this daemon writes.
pub const RECORD_VERSION: u64 = 1;

/// Why a record file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not a record of the version it claims.
    #[error("not a valid container record (version {version}): {source}")]
    Invalid {
        /// The version the file claims (0: none).
        version: u64,
        /// What is wrong.
        #[source]
        source: serde_json::Error,
    },
    /// Written by a newer vmrund.
    #[error("container record version {found} is newer than this vmrund reads (up to {RECORD_VERSION}): it was written by a newer vmrund; run that one, or remove the container with it")]
    FutureVersion {
        /// The file's version.
        found: u64,
    },
}

#[derive(Serialize)]
struct Versioned<'a> {
    version: u64,
    #[serde(flatten)]
    record: &'a ContainerRecord,
}

/// A record as the bytes of its file.
pub fn encode(rec: &ContainerRecord) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec_pretty(&Versioned {
        version: RECORD_VERSION,
        record: rec,
    })
}

/// A record from the bytes of its file, migrated to the current version; also says which
/// version the file had.
pub fn decode(data: &[u8]) -> Result<(ContainerRecord, u64), DecodeError> {
    let invalid = |version| move |source| DecodeError::Invalid { version, source };
    let mut value: Value = serde_json::from_slice(data).map_err(invalid(0))?;
    let version = match value.as_object_mut().and_then(|o| o.remove("version")) {
        None => 0,
        Some(v) => v.as_u64().ok_or_else(|| DecodeError::Invalid {
            version: 0,
            source: serde::de::Error::custom(format!("version {v} is not a number")),
        })?,
    };
    let rec = match version {
        0 => migrate::from_v0(value).map_err(invalid(0))?,
        RECORD_VERSION => serde_json::from_value(value).map_err(invalid(version))?,
        found => return Err(DecodeError::FutureVersion { found }),
    };
    Ok((rec, version))
}
