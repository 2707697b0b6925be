//! A small token issuer for registries configured with `auth.token` (docker's token
//! authentication spec): `GET /token?service=…&scope=…` on 127.0.0.1, served by a
//! std thread. It checks HTTP basic credentials against one user, answers wrong ones
//! with 401, gives anonymous clients a token with no access, and signs JWTs with RS256
//! (signature by the `openssl` CLI), carrying the signing certificate in the `x5c`
//! header; the registry's `rootcertbundle` is that certificate.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::pki::{self, KeyPair};
use super::registry::Auth;

/// One request the issuer answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The user whose credentials were checked (`None`: anonymous).
    pub user: Option<String>,
    /// The `service` parameter.
    pub service: Option<String>,
    /// Every `scope` parameter.
    pub scopes: Vec<String>,
    /// The HTTP status answered.
    pub status: u16,
}

pub struct TokenIssuer {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    pub service: String,
    pub issuer: String,
    /// The signing certificate (the registry's `rootcertbundle`).
    pub signing: KeyPair,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
    addr: String,
    thread: Option<JoinHandle<()>>,
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Issuer {
    user: String,
    password: String,
    service: String,
    issuer: String,
    key: PathBuf,
    x5c: String,
}

impl TokenIssuer {
    /// Starts an issuer for one user; `None` (reason printed) without `openssl`.
    pub fn start(dir: &Path, user: &str, password: &str) -> Option<TokenIssuer> {
        if !super::registry::have_tools(&["openssl"]) {
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let signing = pki::self_signed(dir, "token-signer");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&signing.cert)
            .output()
            .unwrap();
        assert!(der.status.success(), "openssl x509 -outform DER failed");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let service = "vmrun-test-registry".to_owned();
        let issuer_name = "vmrun-test-issuer".to_owned();
        let issuer = Issuer {
            user: user.to_owned(),
            password: password.to_owned(),
            service: service.clone(),
            issuer: issuer_name.clone(),
            key: signing.key.clone(),
            x5c: base64::engine::general_purpose::STANDARD.encode(&der.stdout),
        };
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let requests = requests.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Some(r) = issuer.serve(stream) {
                        requests.lock().unwrap().push(r);
                    }
                }
            })
        };
        Some(TokenIssuer {
            realm: format!("http://{addr}/token"),
            service,
            issuer: issuer_name,
            signing,
            requests,
            stop,
            addr,
            thread: Some(thread),
        })
    }

    /// The registry's `auth.token` settings for this issuer.
    pub fn auth(&self) -> Auth {
        Auth::Token {
            realm: self.realm.clone(),
            service: self.service.clone(),
            issuer: self.issuer.clone(),
            cert: self.signing.cert.clone(),
        }
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Forgets the requests answered so far.
    pub fn clear(&self) {
        self.requests.lock().unwrap().clear();
    }
}

impl Issuer {
    fn serve(&self, stream: TcpStream) -> Option<TokenRequest> {
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let target = line.split_whitespace().nth(1)?.to_owned();
        let mut authorization = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                if k.trim().eq_ignore_ascii_case("authorization") {
                    authorization = Some(v.trim().to_owned());
                }
            }
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut service = None;
        let mut scopes = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "service" => service = Some(url_decode(v)),
                "scope" => scopes.extend(url_decode(v).split(' ').map(str::to_owned)),
                _ => {}
            }
        }
        let user = authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|d| d.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())));
        let (status, body) = if path != "/token" {
            (404, "not found".to_owned())
        } else {
            match &user {
                Some((u, p)) if *u != self.user || *p != self.password => (
                    401,
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}"#
                        .to_owned(),
                ),
                _ => {
                    let granted = if user.is_some() { &scopes[..] } else { &[] };
                    let token = self.token(user.as_ref().map(|(u, _)| u.as_str()), granted);
                    (200, serde_json::json!({ "token": token, "expires_in": 300 }).to_string())
                }
            }
        };
        let reason = match status {
            200 => "OK",
            401 => "Unauthorized",
            _ => "Not Found",
        };
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        Some(TokenRequest {
            user: user.map(|(u, _)| u),
            service,
            scopes,
            status,
        })
    }

    /// A signed JWT granting `scopes` (`repository:NAME:ACTIONS`).
    fn token(&self, subject: Option<&str>, scopes: &[String]) -> String {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|s| {
                let (kind, rest) = s.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(serde_json::json!({
                    "type": kind, "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "x5c": [self.x5c] });
        let claims = serde_json::json!({
            "iss": self.issuer, "sub": subject.unwrap_or(""), "aud": self.service,
            "exp": now.as_secs() + 300, "nbf": now.as_secs() - 10, "iat": now.as_secs(),
            "jti": format!("{}", now.as_nanos()), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(signing_input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "openssl dgst -sign failed");
        format!("{signing_input}.{}", b64(&out.stdout))
    }
}

/// Percent-decoding of a query value (`+` is a space).
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
