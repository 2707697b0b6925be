//! Who may drive the daemon through the adapter: only a page that was handed this
//! launch's token (the URL `vmrun ui --browser` opens), addressed by a loopback host
//! name (so a DNS-rebound page of another origin cannot use the port either).

use rand::RngCore;

/// The header that carries the token on plain requests.
pub const TOKEN_HEADER: &str = "x-vmrun-token";

/// A fresh random token: 32 bytes from the OS, hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares in time independent of where the strings differ.
pub fn token_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a `Host` header names this server by a loopback name and its port.
pub fn host_allowed(host: Option<&str>, port: u16) -> bool {
    let Some(host) = host else { return false };
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|name| host == format!("{name}:{port}"))
}

/// Whether an `Origin` header (sent by browsers on WebSocket handshakes and
/// cross-origin requests) is this server's own; a missing one is a non-browser client.
pub fn origin_allowed(origin: Option<&str>, port: u16) -> bool {
    match origin {
        None => true,
        Some(origin) => origin
            .strip_prefix("http://")
            .is_some_and(|host| host_allowed(Some(host), port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_exactly() {
        let a = new_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, new_token());
        assert!(token_matches(&a, &a.clone()));
        assert!(!token_matches(&a, &a[1..]));
        assert!(!token_matches(&a, ""));
    }

    #[test]
    fn only_loopback_names_of_this_port() {
        assert!(host_allowed(Some("127.0.0.1:4000"), 4000));
        assert!(host_allowed(Some("localhost:4000"), 4000));
        assert!(!host_allowed(Some("evil.example:4000"), 4000));
        assert!(!host_allowed(Some("127.0.0.1:4001"), 4000));
        assert!(!host_allowed(None, 4000));
        assert!(origin_allowed(None, 4000));
        assert!(origin_allowed(Some("http://127.0.0.1:4000"), 4000));
        assert!(!origin_allowed(Some("http://evil.example"), 4000));
        assert!(!origin_allowed(Some("null"), 4000));
    }
}
