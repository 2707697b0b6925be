//! Image references (`[DOMAIN/]PATH[:TAG][@DIGEST]`), checked with the
//! grammar and messages of docker's `distribution/reference` package.

/// The longest repository name docker accepts.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Checks `reference` like docker's `reference.ParseNormalizedNamed` and
/// returns its error text (`invalid reference format...`) when it fails.
pub fn check_reference(reference: &str) -> Result<(), String> {
    const INVALID: &str = "invalid reference format";
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest {
        if !is_digest(d) {
            return Err(INVALID.into());
        }
    }
    let name_start = name_and_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match name_and_tag[name_start..].rfind(':') {
        Some(i) => (
            &name_and_tag[..name_start + i],
            Some(&name_and_tag[name_start + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    if tag.is_some_and(|t| !is_tag(t)) || name.is_empty() {
        return Err(INVALID.into());
    }
    let (domain, remote) = split_domain(name);
    if let Some(d) = domain {
        if !is_domain(d) {
            return Err(INVALID.into());
        }
    }
    if !remote.split('/').all(is_path_component_ignoring_case) {
        return Err(INVALID.into());
    }
    if remote.to_lowercase() != remote {
        return Err(format!(
            "{INVALID}: repository name ({remote}) must be lowercase"
        ));
    }
    if name.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(format!(
            "{INVALID}: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        ));
    }
    Ok(())
}

/// Splits `name` into its registry domain (if it names one) and the remote
/// path, adding `library/` to one-component Docker Hub names.
fn split_domain(name: &str) -> (Option<&str>, String) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (Some(first), rest.to_string())
        }
        Some(_) => (None, name.to_string()),
        None => (None, format!("library/{name}")),
    }
}

fn is_alnum_run(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`, case checked separately so
/// an upper-case name gets docker's "must be lowercase" message.
fn is_path_component_ignoring_case(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphanumeric() {
            expect_alnum = false;
            i += 1;
            continue;
        }
        if expect_alnum {
            return false;
        }
        let sep_start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &s[sep_start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return false;
        }
        expect_alnum = true;
    }
    !expect_alnum
}

/// `host[.host...][:port]`, or a bracketed IPv6 address with a port.
fn is_domain(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((addr, after)) => {
                if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                return after.is_empty()
                    || after
                        .strip_prefix(':')
                        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            }
            None => return false,
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host_ok = host
        .split('.')
        .all(|c| is_alnum_run(&c.replace('-', "")) && !c.starts_with('-') && !c.ends_with('-'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(s: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match s.as_bytes().split_first() {
        Some((first, rest)) => {
            word(*first)
                && rest.len() <= 127
                && rest.iter().all(|b| word(*b) || matches!(b, b'.' | b'-'))
        }
        None => false,
    }
}

/// `ALGORITHM:HEX` with at least 32 hex digits.
fn is_digest(s: &str) -> bool {
    s.split_once(':').is_some_and(|(algo, hex)| {
        !algo.is_empty()
            && algo
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'_' | b'-'))
            && hex.len() >= 32
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_docker_accepts() {
        for ok in [
            "busybox",
            "busybox:latest",
            "bb:v1.2-rc_3",
            "library/busybox",
            "localhost:5000/team/app:v1",
            "registry.example.com/a/b__c/d-e.f",
            "Registry.Example.com/x",
            "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "[::1]:5000/x:y",
        ] {
            assert_eq!(check_reference(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_with_docker_messages() {
        assert_eq!(
            check_reference("Bad:x").unwrap_err(),
            "invalid reference format: repository name (library/Bad) must be lowercase"
        );
        assert_eq!(
            check_reference("team/Bad").unwrap_err(),
            "invalid reference format: repository name (team/Bad) must be lowercase"
        );
        for bad in [
            "",
            "a b",
            "x:",
            "x:-tag",
            "-x",
            "x//y",
            "x@sha256:12",
            "x..y",
            ":tag",
        ] {
            assert_eq!(
                check_reference(bad).unwrap_err(),
                "invalid reference format",
                "{bad:?}"
            );
        }
        assert!(check_reference(&"a".repeat(300))
            .unwrap_err()
            .contains("255"));
    }
}
