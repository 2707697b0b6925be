//! Sizes (`--memory 512m`) and CPU counts (`--cpus 1.5`).

/// Parses a memory size like docker's `units.RAMInBytes`: a decimal number,
/// an optional space, an optional unit `k`, `m`, `g`, `t`, `p` (powers of
/// 1024, any case), an optional `i` and an optional `b`. A bare number is bytes.
pub fn parse_ram_in_bytes(input: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{input}'");
    let s = input.trim_end();
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, rest) = s.split_at(number_end);
    if number.is_empty()
        || !number.starts_with(|c: char| c.is_ascii_digit())
        || number.ends_with('.')
    {
        return Err(invalid());
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut chars = rest.chars().peekable();
    let multiplier: f64 = match chars.peek().map(|c| c.to_ascii_lowercase()) {
        Some('k') => 1024f64,
        Some('m') => 1024f64.powi(2),
        Some('g') => 1024f64.powi(3),
        Some('t') => 1024f64.powi(4),
        Some('p') => 1024f64.powi(5),
        _ => 1.0,
    };
    if multiplier > 1.0 {
        chars.next();
    }
    if matches!(chars.peek(), Some('i' | 'I')) {
        chars.next();
    }
    if matches!(chars.peek(), Some('b' | 'B')) {
        chars.next();
    }
    if chars.next().is_some() {
        return Err(invalid());
    }
    let bytes = value * multiplier;
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as i64)
}

/// Parses `--cpus` into nano-CPUs (`HostConfig.NanoCpus`), rejecting values
/// finer than one nano-CPU, like docker's `NanoCPUs` option.
pub fn parse_nano_cpus(input: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {input} as a rational number");
    let s = input.trim();
    let (int_part, frac_part) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.chars().all(|c| c.is_ascii_digit())
        || !frac_part.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > 9 {
        return Err("value is too precise".to_string());
    }
    let whole: i64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| bad())?
    };
    let frac: i64 = if frac_trimmed.is_empty() {
        0
    } else {
        let padded = format!("{frac_trimmed:0<9}");
        padded.parse().map_err(|_| bad())?
    };
    whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_sizes() {
        assert_eq!(parse_ram_in_bytes("512m"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_ram_in_bytes("1g"), Ok(1024 * 1024 * 1024));
        assert_eq!(parse_ram_in_bytes("1024k"), Ok(1024 * 1024));
        assert_eq!(parse_ram_in_bytes("1024"), Ok(1024));
        assert_eq!(parse_ram_in_bytes("1.5G"), Ok(1536 * 1024 * 1024));
        assert_eq!(parse_ram_in_bytes("64MiB"), Ok(64 * 1024 * 1024));
        assert_eq!(parse_ram_in_bytes("10 mb"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_ram_in_bytes("2b"), Ok(2));
    }

    #[test]
    fn bad_ram_sizes() {
        for bad in ["", "m", "abc", "12x", "1.g", "-5m", "5mm", "5 m b x"] {
            assert_eq!(
                parse_ram_in_bytes(bad),
                Err(format!("invalid size: '{bad}'")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_nano_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_nano_cpus("0.000000001"), Ok(1));
        assert_eq!(parse_nano_cpus(".5"), Ok(500_000_000));
        assert_eq!(parse_nano_cpus("1.0000000000"), Ok(1_000_000_000));
        assert!(parse_nano_cpus("abc").is_err());
        assert!(parse_nano_cpus("-1").is_err());
        assert!(parse_nano_cpus("").is_err());
        assert_eq!(
            parse_nano_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
    }
}
