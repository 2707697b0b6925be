//! Test support shared by the image library's tests and the end-to-end tests:
//! [`registry::Registry`], a real registry (Debian's `docker-registry`, CNCF
//! distribution) configured and started per test on 127.0.0.1 (anonymous,
//! htpasswd, `auth.token` or TLS), and [`pki::Pki`], a CA with server and
//! client certificates made with `openssl`.

pub mod pki;
pub mod registry;

/// `sha256` of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
