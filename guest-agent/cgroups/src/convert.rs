//! Conversions from OCI resource values to what the cgroup files accept.

use crate::CgroupError;

/// Default CFS period when only a quota is given (100 ms, as runc and Docker use).
pub(crate) const DEFAULT_CPU_PERIOD_US: u64 = 100_000;

/// Converts v1 `cpu.shares` (2..=262144) to v2 `cpu.weight` (1..=10000) with the formula runc,
/// crun and systemd use: `1 + ((shares - 2) * 9999) / 262142`. Shares of 0 mean "unset".
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The v2 `cpu.max` line for an OCI quota/period, or `None` when neither is set.
pub(crate) fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let quota = quota.filter(|q| *q != 0);
    let period = period.filter(|p| *p != 0);
    if quota.is_none() && period.is_none() {
        return None;
    }
    let period = period.unwrap_or(DEFAULT_CPU_PERIOD_US);
    Some(match quota {
        Some(q) if q > 0 => format!("{q} {period}"),
        _ => format!("max {period}"),
    })
}

/// A byte limit where -1 means unlimited; 0 and other negatives are rejected.
pub(crate) fn memory_limit(field: &'static str, value: i64) -> Result<Option<u64>, CgroupError> {
    match value {
        -1 => Ok(None),
        v if v > 0 => Ok(Some(v as u64)),
        v => Err(CgroupError::InvalidResource {
            field,
            value: v.to_string(),
        }),
    }
}

/// The v2 `memory.swap.max` value. OCI `swap` is memory+swap; v2 limits swap alone. Without a
/// swap value a memory limit means "no swap" (the v1 behaviour of setting memsw = limit).
pub(crate) fn swap_max(
    limit: Option<i64>,
    swap: Option<i64>,
) -> Result<Option<String>, CgroupError> {
    match (limit, swap) {
        (_, Some(-1)) => Ok(Some("max".into())),
        (Some(l), Some(s)) if l > 0 && s >= l => Ok(Some((s - l).to_string())),
        (Some(-1), Some(s)) if s > 0 => Ok(Some("max".into())),
        (_, Some(s)) => Err(CgroupError::InvalidResource {
            field: "memory.swap",
            value: format!("{s} (memory limit {limit:?})"),
        }),
        (Some(l), None) if l > 0 => Ok(Some("0".into())),
        _ => Ok(None),
    }
}

/// Formats an optional byte limit for cgroup files ("max" for unlimited in v2).
pub(crate) fn v2_limit(limit: Option<u64>) -> String {
    limit.map_or_else(|| "max".to_string(), |l| l.to_string())
}

/// The pids limit: 0 or negative means unlimited.
pub(crate) fn pids_limit(limit: i64) -> Option<u64> {
    (limit > 0).then_some(limit as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_conversion_matches_runc() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
    }

    #[test]
    fn cpu_max_lines() {
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(cpu_max(Some(50_000), None).as_deref(), Some("50000 100000"));
        assert_eq!(
            cpu_max(Some(150_000), Some(100_000)).as_deref(),
            Some("150000 100000")
        );
        assert_eq!(
            cpu_max(Some(-1), Some(20_000)).as_deref(),
            Some("max 20000")
        );
    }

    #[test]
    fn swap_values() {
        assert_eq!(swap_max(Some(100), None).unwrap().as_deref(), Some("0"));
        assert_eq!(
            swap_max(Some(100), Some(300)).unwrap().as_deref(),
            Some("200")
        );
        assert_eq!(
            swap_max(Some(100), Some(-1)).unwrap().as_deref(),
            Some("max")
        );
        assert_eq!(swap_max(None, None).unwrap(), None);
        assert!(swap_max(Some(100), Some(50)).is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(memory_limit("m", -1).unwrap(), None);
        assert_eq!(memory_limit("m", 4096).unwrap(), Some(4096));
        assert!(memory_limit("m", 0).is_err());
        assert_eq!(pids_limit(0), None);
        assert_eq!(pids_limit(-1), None);
        assert_eq!(pids_limit(5), Some(5));
    }
}
