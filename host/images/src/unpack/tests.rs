//! Unpacker tests with crafted tars (raw header bytes, so `..` and absolute
//! names reach the unpacker exactly as an attacker would write them).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;

pub(crate) struct RawTar {
    builder: tar::Builder<Vec<u8>>,
}

impl RawTar {
    pub(crate) fn new() -> Self {
        RawTar {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    pub(crate) fn entry(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
        mode: u32,
    ) -> &mut Self {
        let mut header = tar::Header::new_gnu();
        {
            let old = header.as_old_mut();
            old.name[..path.len()].copy_from_slice(path.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(1234);
        header.set_gid(4321);
        header.set_mtime(1_000_000_000);
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    pub(crate) fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.entry(path, tar::EntryType::Regular, "", data, 0o644)
    }

    pub(crate) fn dir(&mut self, path: &str) -> &mut Self {
        self.entry(path, tar::EntryType::Directory, "", b"", 0o755)
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(path, tar::EntryType::Symlink, target, b"", 0o777)
    }

    pub(crate) fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(path, tar::EntryType::Link, target, b"", 0o644)
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

const RESOLVERS: [Resolver; 2] = [Resolver::Auto, Resolver::ComponentWalk];

/// Unpacks into `<tmp>/layer` and returns the error; `<tmp>/outside` is a sibling that must stay empty.
fn unpack_expect_unsafe(tar: Vec<u8>, resolver: Resolver, expect_entry: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let layer = tmp.path().join("a/b/layer");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&layer).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let err = unpack_layer(&tar[..], &layer, UnpackOptions { resolver }).unwrap_err();
    match &err {
        UnpackError::UnsafeEntry { entry, .. } => assert_eq!(entry, expect_entry, "{err}"),
        other => panic!("expected an unsafe-entry error for {expect_entry}, got {other:?}"),
    }
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "something was written outside"
    );
    assert!(!tmp.path().join("x").exists());
    assert!(!tmp.path().join("a/x").exists());
    assert!(!tmp.path().join("evil").exists());
}

#[test]
fn refuses_tar_slip() {
    for resolver in RESOLVERS {
        let mut t = RawTar::new();
        t.file("../../x", b"pwned");
        unpack_expect_unsafe(t.finish(), resolver, "../../x");
        let mut t = RawTar::new();
        t.dir("d").file("d/../../../outside/x", b"pwned");
        unpack_expect_unsafe(t.finish(), resolver, "d/../../../outside/x");
    }
}

#[test]
fn refuses_absolute_paths() {
    let name = format!("/etc/vmrun-unpack-test-{}", std::process::id());
    for resolver in RESOLVERS {
        let mut t = RawTar::new();
        t.file(&name, b"pwned");
        unpack_expect_unsafe(t.finish(), resolver, &name);
        assert!(!Path::new(&name).exists());
    }
}

#[test]
fn refuses_writes_through_escaping_symlinks() {
    let evil = format!("vmrun-unpack-test-{}", std::process::id());
    for resolver in RESOLVERS {
        // Absolute symlink to /etc, then a file through it.
        let mut t = RawTar::new();
        t.symlink("a", "/etc").file(&format!("a/{evil}"), b"pwned");
        unpack_expect_unsafe(t.finish(), resolver, &format!("a/{evil}"));
        assert!(!Path::new("/etc").join(&evil).exists());
        // Relative symlink climbing out of the layer, then a file through it.
        let mut t = RawTar::new();
        t.symlink("b", "../../../outside")
            .file("b/passwd", b"pwned");
        unpack_expect_unsafe(t.finish(), resolver, "b/passwd");
        // Symlink to /etc then a/passwd, the classic case.
        let mut t = RawTar::new();
        t.symlink("a", "/etc")
            .file("a/passwd", b"root::0:0::/:/bin/sh\n");
        unpack_expect_unsafe(t.finish(), resolver, "a/passwd");
        // A directory entry through the symlink.
        let mut t = RawTar::new();
        t.symlink("c", "/tmp").dir(&format!("c/{evil}"));
        unpack_expect_unsafe(t.finish(), resolver, &format!("c/{evil}"));
        assert!(!Path::new("/tmp").join(&evil).exists());
    }
}

#[test]
fn refuses_hard_links_leaving_the_layer() {
    for resolver in RESOLVERS {
        let mut t = RawTar::new();
        t.hardlink("passwd", "/etc/passwd");
        unpack_expect_unsafe(t.finish(), resolver, "passwd");
        let mut t = RawTar::new();
        t.hardlink("passwd", "../../../etc/passwd");
        unpack_expect_unsafe(t.finish(), resolver, "passwd");
        let mut t = RawTar::new();
        t.symlink("e", "/etc").hardlink("passwd", "e/passwd");
        unpack_expect_unsafe(t.finish(), resolver, "passwd");
    }
}

#[test]
fn unpacks_files_links_and_whiteouts() {
    if !is_root() {
        vmrun_test_skip::report(format_args!(
            "unpacking ownership, whiteouts and opaque xattrs needs root"
        ));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layer = tmp.path().join("layer");
    fs::create_dir(&layer).unwrap();
    let mut t = RawTar::new();
    t.dir("etc/")
        .file("etc/hosts", b"127.0.0.1 localhost\n")
        .entry(
            "bin/tool",
            tar::EntryType::Regular,
            "",
            b"#!/bin/sh\n",
            0o4755,
        )
        .symlink("bin/sh", "busybox")
        .hardlink("bin/tool2", "bin/tool")
        .file(".wh.gone", b"")
        .dir("opaque/")
        .file("opaque/.wh..wh..opq", b"")
        .file("opaque/kept", b"k")
        .dir("dirlink-target")
        .symlink("dirlink", "dirlink-target")
        .file("dirlink/inside", b"i")
        .entry("fifo", tar::EntryType::Fifo, "", b"", 0o600)
        .file("./dot/prefixed", b"p");
    let stats = unpack_layer(&t.finish()[..], &layer, UnpackOptions::default()).unwrap();
    assert_eq!(
        fs::read(layer.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
    let tool = fs::metadata(layer.join("bin/tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o7777, 0o4755);
    assert_eq!((tool.uid(), tool.gid()), (1234, 4321));
    assert_eq!(tool.mtime(), 1_000_000_000);
    assert_eq!(tool.nlink(), 2);
    assert_eq!(
        fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let gone = fs::symlink_metadata(layer.join("gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!layer.join(".wh.gone").exists());
    let opaque = rustix::fs::getxattr(
        layer.join("opaque").as_path(),
        "trusted.overlay.opaque",
        &mut [0u8; 4],
    )
    .unwrap();
    assert_eq!(opaque, 1);
    assert!(layer.join("opaque/kept").exists());
    assert!(!layer.join("opaque/.wh..wh..opq").exists());
    assert_eq!(fs::read(layer.join("dirlink-target/inside")).unwrap(), b"i");
    assert!(fs::symlink_metadata(layer.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(fs::read(layer.join("dot/prefixed")).unwrap(), b"p");
    assert_eq!(
        fs::metadata(layer.join("etc")).unwrap().mtime(),
        1_000_000_000
    );
    assert_eq!(stats.bytes, 20 + 10 + 1 + 1 + 1);
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = RawTar::new();
    t.file("x", b"old")
        .dir("x")
        .file("x/y", b"new")
        .file("x", b"file again");
    unpack_layer(&t.finish()[..], tmp.path(), UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(tmp.path().join("x")).unwrap(), b"file again");
}

#[test]
fn truncated_tar_is_a_read_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = RawTar::new();
    t.file("big", &[7u8; 4096]);
    let bytes = t.finish();
    let err = unpack_layer(&bytes[..1024], tmp.path(), UnpackOptions::default()).unwrap_err();
    assert!(matches!(err, UnpackError::Read(_)), "{err:?}");
}

#[test]
fn clean_components_rules() {
    assert_eq!(
        clean_components(b"./a//b/").unwrap(),
        vec![&b"a"[..], &b"b"[..]]
    );
    assert!(clean_components(b"/a").is_err());
    assert!(clean_components(b"a/../b").is_err());
    assert!(clean_components(b".").unwrap().is_empty());
}
