//! Human-readable durations and sizes, as docker's `go-units` prints them.

/// Go's `units.HumanDuration` for a duration in seconds
/// (`"Less than a second"`, `"5 seconds"`, `"About a minute"`, `"2 hours"`...).
pub fn human_duration(seconds: i64) -> String {
    let hours_rounded = ((seconds as f64) / 3600.0).round() as i64;
    let minutes = seconds / 60;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours_rounded == 1 {
        "About an hour".into()
    } else if hours_rounded < 48 {
        format!("{hours_rounded} hours")
    } else if hours_rounded < 24 * 7 * 2 {
        format!("{} days", hours_rounded / 24)
    } else if hours_rounded < 24 * 30 * 2 {
        format!("{} weeks", hours_rounded / 24 / 7)
    } else if hours_rounded < 24 * 365 * 2 {
        format!("{} months", hours_rounded / 24 / 30)
    } else {
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}

/// "N units ago" for a Unix timestamp, relative to `now` (both seconds).
pub fn time_ago(created: i64, now: i64) -> String {
    format!("{} ago", human_duration(now - created))
}

/// Go's `fmt.Sprintf("%.*g", precision, value)`.
pub fn go_format_g(value: f64, precision: usize) -> String {
    let precision = precision.max(1);
    if value == 0.0 {
        return "0".into();
    }
    if !value.is_finite() {
        return if value.is_nan() {
            "NaN".into()
        } else if value > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let sci = format!("{:.*e}", precision - 1, value);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= precision as i32 {
        let mantissa = strip_fraction_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        strip_fraction_zeros(&format!("{value:.decimals$}")).to_string()
    }
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

fn size_and_unit(mut size: f64, base: f64, units: &[&'static str; 9]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// Go's `units.HumanSizeWithPrecision`: decimal units (`"4.26MB"`); docker
/// prints image sizes with precision 3.
pub fn human_size_with_precision(size: f64, precision: usize) -> String {
    let (value, unit) = size_and_unit(size, 1000.0, &DECIMAL_UNITS);
    format!("{}{unit}", go_format_g(value, precision))
}

/// Go's `units.HumanSize` (precision 4).
pub fn human_size(size: f64) -> String {
    human_size_with_precision(size, 4)
}

/// Go's `units.BytesSize`: binary units (`"1.5MiB"`), as `stats` prints memory.
pub fn bytes_size(size: f64) -> String {
    let (value, unit) = size_and_unit(size, 1024.0, &BINARY_UNITS);
    format!("{}{unit}", go_format_g(value, 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_go_units() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(119), "About a minute");
        assert_eq!(human_duration(120), "2 minutes");
        assert_eq!(human_duration(3599), "59 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5399), "About an hour");
        assert_eq!(human_duration(5400), "2 hours");
        assert_eq!(human_duration(47 * 3600), "47 hours");
        assert_eq!(human_duration(48 * 3600), "2 days");
        assert_eq!(human_duration(14 * 24 * 3600), "2 weeks");
        assert_eq!(human_duration(60 * 24 * 3600), "2 months");
        assert_eq!(human_duration(2 * 365 * 24 * 3600), "2 years");
        assert_eq!(time_ago(100, 102), "2 seconds ago");
    }

    #[test]
    fn go_g_format() {
        assert_eq!(go_format_g(4.26123, 3), "4.26");
        assert_eq!(go_format_g(4.0, 3), "4");
        assert_eq!(go_format_g(123.456, 3), "123");
        assert_eq!(go_format_g(999.999, 3), "1e+03");
        assert_eq!(go_format_g(12.0, 4), "12");
        assert_eq!(go_format_g(1.5, 4), "1.5");
        assert_eq!(go_format_g(0.0001234, 3), "0.000123");
        assert_eq!(go_format_g(0.00001234, 3), "1.23e-05");
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size_with_precision(4_261_234.0, 3), "4.26MB");
        assert_eq!(human_size_with_precision(1_978_368.0, 3), "1.98MB");
        assert_eq!(human_size_with_precision(0.0, 3), "0B");
        assert_eq!(human_size_with_precision(999.0, 3), "999B");
        assert_eq!(human_size_with_precision(12_345.0, 3), "12.3kB");
        assert_eq!(human_size_with_precision(77_800_000.0, 3), "77.8MB");
        assert_eq!(human_size_with_precision(1_234_567_890.0, 3), "1.23GB");
        assert_eq!(human_size(1_000_000.0), "1MB");
        assert_eq!(bytes_size(1_572_864.0), "1.5MiB");
        assert_eq!(bytes_size(512.0), "512B");
        assert_eq!(bytes_size(25_125_224_448.0), "23.4GiB");
    }
}
