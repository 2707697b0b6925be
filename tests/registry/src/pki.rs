//! Test certificates made with the `openssl` CLI: a CA, server certificates for
//! 127.0.0.1, client certificates, self-signed signing certificates.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate and its private key (PEM files).
#[derive(Clone, Debug)]
pub struct KeyPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA under `dir` that issues certificates.
pub struct Pki {
    dir: PathBuf,
    pub ca: KeyPair,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl KeyPair {
    /// `dir/name.crt` and `dir/name.key`.
    fn named(dir: &Path, name: &str) -> KeyPair {
        KeyPair {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        }
    }
}

/// A self-signed certificate `name` (RSA, for signing tokens), in `dir`.
pub fn self_signed(dir: &Path, name: &str) -> KeyPair {
    self_signed_with(dir, name, &["-newkey", "rsa:2048"])
}

/// `openssl req -x509` for `name` in `dir`, with `args` (key type, extensions).
fn self_signed_with(dir: &Path, name: &str, args: &[&str]) -> KeyPair {
    let pair = KeyPair::named(dir, name);
    let subject = format!("/CN={name}");
    let key = pair.key.to_string_lossy().into_owned();
    let cert = pair.cert.to_string_lossy().into_owned();
    let mut all = vec!["req", "-x509", "-nodes", "-days", "2", "-subj", &subject];
    all.extend_from_slice(args);
    all.extend(["-keyout", &key, "-out", &cert]);
    openssl(&all, dir);
    pair
}

impl Pki {
    /// A fresh CA `name` in `dir`; `None` (reason printed) without `openssl`.
    pub fn new(dir: &Path, name: &str) -> Option<Pki> {
        if !super::registry::have_tools(&["openssl"]) {
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let ca = self_signed_with(
            dir,
            name,
            &[
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Some(Pki {
            dir: dir.to_owned(),
            ca,
        })
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, name: &str) -> KeyPair {
        self.issue(
            name,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A client certificate.
    pub fn client(&self, name: &str) -> KeyPair {
        self.issue(name, "extendedKeyUsage=clientAuth\n")
    }

    fn issue(&self, name: &str, extensions: &str) -> KeyPair {
        let pair = KeyPair::named(&self.dir, name);
        let csr = self.dir.join(format!("{name}.csr"));
        let ext = self.dir.join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n{extensions}"),
        )
        .unwrap();
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &pair.key.to_string_lossy(),
                "-out",
                &csr.to_string_lossy(),
            ],
            &self.dir,
        );
        let serial = format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr.to_string_lossy(),
                "-CA",
                &self.ca.cert.to_string_lossy(),
                "-CAkey",
                &self.ca.key.to_string_lossy(),
                "-set_serial",
                &serial,
                "-days",
                "2",
                "-extfile",
                &ext.to_string_lossy(),
                "-out",
                &pair.cert.to_string_lossy(),
            ],
            &self.dir,
        );
        pair
    }
}

/// Copies `files` (source, name) into `<certs_dir>/<host>/`, as docker's certs.d wants.
pub fn install_certs(certs_dir: &Path, host: &str, files: &[(&Path, &str)]) {
    let dir = certs_dir.join(host);
    std::fs::create_dir_all(&dir).unwrap();
    for (source, name) in files {
        std::fs::copy(source, dir.join(name)).unwrap();
    }
}
