//! Pulls from a real registry (Debian's `docker-registry`) serving HTTPS on 127.0.0.1
//! with a certificate from a CA the test makes (`openssl`): docker's `certs.d` layout
//! for CA roots and client certificates, insecure registries, clear TLS errors.

mod common;

use std::path::{Path, PathBuf};

use common::pki::{install_certs, KeyPair, Pki};
use common::registry::{have_tools, Auth, Registry, Tls};
use vmrun_images::{ImageError, ImageStore, PullOptions, RegistryHosts};

struct Setup {
    registry: Registry,
    pki: Pki,
    tmp: tempfile::TempDir,
}

impl Setup {
    /// An HTTPS registry holding `test/busybox:1`; with `client_cert`, it requires a
    /// client certificate signed by the test CA.
    fn start(client_cert: bool) -> Option<Setup> {
        if !common::require_root() || !have_tools(&["skopeo", "openssl"]) {
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::new(&tmp.path().join("pki"), "vmrun-test-ca")?;
        let server = pki.server("registry");
        let registry = Registry::start_tls(
            Auth::Anonymous,
            Tls {
                cert: server.cert,
                key: server.key,
                client_cas: if client_cert {
                    vec![pki.ca.cert.clone()]
                } else {
                    Vec::new()
                },
            },
        )?;
        let archive = common::make_busybox(tmp.path(), "oci")?;
        let skopeo_certs = tmp.path().join("skopeo-certs");
        std::fs::create_dir_all(&skopeo_certs).unwrap();
        if client_cert {
            let client = pki.client("skopeo");
            install_certs(
                tmp.path(),
                "skopeo-certs",
                &[(&client.cert, "client.cert"), (&client.key, "client.key")],
            );
        }
        registry.skopeo_push_with(&archive, "test/busybox:1", None, Some(&skopeo_certs));
        Some(Setup { registry, pki, tmp })
    }

    fn reference(&self) -> String {
        format!("{}/test/busybox:1", self.registry.addr)
    }

    fn certs_dir(&self) -> PathBuf {
        self.tmp.path().join("certs.d")
    }

    fn hosts(&self) -> RegistryHosts {
        RegistryHosts {
            certs_dirs: vec![self.tmp.path().join("empty-certs.d"), self.certs_dir()],
            ..Default::default()
        }
    }

    fn pull(
        &self,
        store: &str,
        hosts: RegistryHosts,
    ) -> Result<vmrun_images::PulledImage, ImageError> {
        let store = ImageStore::open(&self.tmp.path().join(store)).unwrap();
        let opts = PullOptions {
            hosts,
            ..Default::default()
        };
        store.pull(&self.reference(), &opts, &|_| {})
    }

    fn install(&self, files: &[(&Path, &str)]) {
        install_certs(&self.certs_dir(), &self.registry.addr, files);
    }
}

fn assert_pulled(result: Result<vmrun_images::PulledImage, ImageError>) {
    let pulled = result.unwrap();
    assert!(pulled.updated);
    assert!(pulled.image.layer_dirs[0].join("bin/busybox").is_file());
}

#[test]
fn untrusted_certificate_is_explained_and_certs_d_ca_fixes_it() {
    let Some(setup) = Setup::start(false) else {
        return;
    };
    let err = setup.pull("store1", setup.hosts()).unwrap_err();
    let message = err.to_string();
    eprintln!("refused as expected: {message}");
    assert!(matches!(err, ImageError::Registry { .. }), "{err}");
    assert!(message.contains(&setup.registry.addr), "{message}");
    assert!(message.contains("not trusted"), "{message}");
    let wanted = format!(
        "{}/{}/ca.crt",
        setup.tmp.path().join("empty-certs.d").display(),
        setup.registry.addr
    );
    assert!(message.contains(&wanted), "{message}");

    // A CA of another name in the registry's certs.d directory makes it trusted.
    setup.install(&[(&setup.pki.ca.cert, "my-ca.crt")]);
    assert_pulled(setup.pull("store2", setup.hosts()));
}

#[test]
fn insecure_registry_skips_verification() {
    let Some(setup) = Setup::start(false) else {
        return;
    };
    for entry in [setup.registry.addr.clone(), "127.0.0.0/8".to_owned()] {
        let hosts = RegistryHosts {
            insecure: vec![entry.clone()],
            ..setup.hosts()
        };
        assert_pulled(setup.pull(&format!("store-{}", entry.replace(['/', ':'], "_")), hosts));
    }
}

#[test]
fn client_certificate_from_certs_d() {
    let Some(setup) = Setup::start(true) else {
        return;
    };
    setup.install(&[(&setup.pki.ca.cert, "ca.crt")]);
    // Trusted server, but no client certificate: refused, and the message says where one goes.
    let err = setup.pull("store1", setup.hosts()).unwrap_err();
    let message = err.to_string();
    eprintln!("refused as expected: {message}");
    assert!(message.contains("client certificate"), "{message}");
    assert!(message.contains("client.cert"), "{message}");

    // A client certificate from another CA is refused too.
    let other = Pki::new(&setup.tmp.path().join("other-pki"), "other-ca").unwrap();
    let stranger: KeyPair = other.client("stranger");
    setup.install(&[
        (&stranger.cert, "client.cert"),
        (&stranger.key, "client.key"),
    ]);
    assert!(setup.pull("store2", setup.hosts()).is_err());

    let client = setup.pki.client("vmrun");
    setup.install(&[(&client.cert, "client.cert"), (&client.key, "client.key")]);
    assert_pulled(setup.pull("store3", setup.hosts()));
}
