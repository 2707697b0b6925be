//! `--health-cmd`, `--health-interval`, `--health-timeout`, `--health-retries`,
//! `--health-start-period`, `--health-start-interval` and `--no-healthcheck`: the container's `Healthcheck`, as the
//! docker CLI builds it (durations in Go's notation, sent as nanoseconds).

use bollard::models::HealthConfig;

use super::OptError;

/// The health flags of `run`/`create`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HealthFlags {
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries
    /// countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-interval")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
}

/// A Go duration (`1h2m3.5s`, `300ms`, `0`) in nanoseconds, with Go's message when it
/// is not one.
pub fn parse_go_duration(text: &str) -> Result<i64, String> {
    vmrun_builder::parse_go_duration(text)
        .ok_or_else(|| format!("time: invalid duration \"{text}\""))
}

impl HealthFlags {
    /// The `Healthcheck` to send, if any flag was given.
    pub fn config(&self) -> Result<Option<HealthConfig>, OptError> {
        let given_options = self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
            || self.health_start_interval.is_some();
        if self.no_healthcheck {
            if self.health_cmd.is_some() || given_options {
                return Err(OptError::new(
                    "--no-healthcheck",
                    "true",
                    "--no-healthcheck conflicts with --health-* options",
                ));
            }
            return Ok(Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }));
        }
        if self.health_cmd.is_none() && !given_options {
            return Ok(None);
        }
        let duration = |flag: &'static str, v: &Option<String>| -> Result<Option<i64>, OptError> {
            v.as_deref()
                .map(|d| {
                    let ns = parse_go_duration(d).map_err(|e| OptError::new(flag, d, e))?;
                    if ns < 0 {
                        return Err(OptError::new(flag, d, "cannot be negative"));
                    }
                    Ok(ns)
                })
                .transpose()
        };
        if self.health_retries.is_some_and(|r| r < 0) {
            return Err(OptError::new(
                "--health-retries",
                &self.health_retries.unwrap_or(0).to_string(),
                "--health-retries cannot be negative",
            ));
        }
        Ok(Some(HealthConfig {
            test: self
                .health_cmd
                .as_ref()
                .map(|c| vec!["CMD-SHELL".into(), c.clone()]),
            interval: duration("--health-interval", &self.health_interval)?,
            timeout: duration("--health-timeout", &self.health_timeout)?,
            retries: self.health_retries,
            start_period: duration("--health-start-period", &self.health_start_period)?,
            start_interval: duration("--health-start-interval", &self.health_start_interval)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Ok(1_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("abc").is_err());
    }

    #[test]
    fn flags_build_dockers_healthcheck() {
        let flags = HealthFlags {
            health_cmd: Some("wget -q localhost".into()),
            health_interval: Some("2s".into()),
            health_retries: Some(2),
            ..Default::default()
        };
        let h = flags.config().unwrap().unwrap();
        assert_eq!(
            h.test,
            Some(vec!["CMD-SHELL".into(), "wget -q localhost".into()])
        );
        assert_eq!(h.interval, Some(2_000_000_000));
        assert_eq!(h.retries, Some(2));
        assert!(HealthFlags::default().config().unwrap().is_none());
        let none = HealthFlags {
            no_healthcheck: true,
            ..Default::default()
        };
        assert_eq!(
            none.config().unwrap().unwrap().test,
            Some(vec!["NONE".to_string()])
        );
    }
}
