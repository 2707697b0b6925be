//! Server-side confinement, checked on the operations themselves (a kernel mount on this
//! host would follow symlinks itself, before the server is asked): symlinks in the share,
//! hostile names, and a directory the host swaps for a symlink between two calls.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use fuser::RenameFlags;
use rustix::io::Errno;

use crate::inodes::ROOT_INO;
use crate::ops_entries::AttrChanges;
use crate::share::ShareFs;
use crate::ShareOptions;

struct Fixture {
    outside: tempfile::TempDir,
    root: tempfile::TempDir,
    share: ShareFs,
}

fn fixture(read_only: bool) -> Fixture {
    let outside = tempfile::tempdir().expect("outside");
    fs::write(outside.path().join("f"), b"outside").expect("outside file");
    let root = tempfile::tempdir().expect("root");
    fs::create_dir(root.path().join("d")).expect("d");
    fs::write(root.path().join("d/f"), b"inside").expect("d/f");
    symlink(outside.path(), root.path().join("esc")).expect("esc");
    symlink("..", root.path().join("up")).expect("up");
    let share = ShareFs::new(&ShareOptions {
        root: root.path().to_path_buf(),
        read_only,
    })
    .expect("share");
    Fixture {
        outside,
        root,
        share,
    }
}

fn lookup(share: &ShareFs, parent: u64, name: &str) -> Result<u64, Errno> {
    let rel = share.child(parent, OsStr::new(name))?;
    Ok(share.entry(&rel)?.ino.0)
}

fn no_changes() -> AttrChanges {
    AttrChanges {
        mode: None,
        size: None,
        atime: None,
        mtime: None,
        fh: None,
        chown: false,
    }
}

#[test]
fn symlinks_are_entries_not_ways_out() {
    let f = fixture(false);
    let esc = lookup(&f.share, ROOT_INO, "esc").expect("lookup esc");
    assert_eq!(
        f.share.get_attr(esc, None).expect("attr").kind,
        fuser::FileType::Symlink
    );
    assert_eq!(
        f.share.read_link(esc).expect("readlink"),
        f.outside.path().as_os_str().as_encoded_bytes()
    );
    // The kernel would never ask for a child of a symlink; a hostile guest may.
    assert_eq!(lookup(&f.share, esc, "f"), Err(Errno::LOOP));
    let up = lookup(&f.share, ROOT_INO, "up").expect("lookup up");
    assert!(lookup(&f.share, up, "etc").is_err());
    assert_eq!(f.share.open_file(esc, libc::O_RDONLY), Err(Errno::LOOP));
    // O_DIRECTORY | O_NOFOLLOW on the link itself: ENOTDIR.
    assert_eq!(f.share.open_dir(esc), Err(Errno::NOTDIR));
    assert!(f.share.make_node(esc, OsStr::new("new"), 0o100644).is_err());
    assert!(f
        .share
        .create_file(esc, OsStr::new("new"), 0o644, libc::O_WRONLY)
        .is_err());
    assert!(!f.outside.path().join("new").exists());
}

#[test]
fn hostile_names_are_refused() {
    let f = fixture(false);
    for bad in ["..", ".", "", "d/f", "../etc", "a\0b"] {
        assert!(lookup(&f.share, ROOT_INO, bad).is_err(), "{bad:?}");
        assert!(
            f.share.make_dir(ROOT_INO, OsStr::new(bad), 0o755).is_err(),
            "{bad:?}"
        );
    }
    assert!(f
        .share
        .rename(
            ROOT_INO,
            OsStr::new("d"),
            ROOT_INO,
            OsStr::new("../moved"),
            RenameFlags::empty()
        )
        .is_err());
    assert!(f.root.path().join("d").is_dir());
    assert_eq!(lookup(&f.share, 999_999, "x"), Err(Errno::NOENT));
}

#[test]
fn a_directory_swapped_for_a_symlink_leads_nowhere() {
    let f = fixture(false);
    let d = lookup(&f.share, ROOT_INO, "d").expect("d");
    let inner = lookup(&f.share, d, "f").expect("d/f");
    // The host swaps `d` for a symlink to a directory outside that has the same names.
    fs::rename(f.root.path().join("d"), f.root.path().join("d.old")).expect("move d");
    symlink(f.outside.path(), f.root.path().join("d")).expect("swap");

    assert_eq!(f.share.get_attr(inner, None), Err(Errno::LOOP));
    assert_eq!(f.share.open_file(inner, libc::O_RDWR), Err(Errno::LOOP));
    let truncate = AttrChanges {
        size: Some(0),
        ..no_changes()
    };
    assert!(f.share.set_attr(inner, &truncate).is_err());
    assert!(f.share.read_link(inner).is_err());
    assert!(f.share.remove(d, OsStr::new("f"), false).is_err());
    assert!(f.share.make_dir(d, OsStr::new("made"), 0o755).is_err());
    assert!(f
        .share
        .make_symlink(d, OsStr::new("l"), Path::new("/"))
        .is_err());
    assert!(f.share.link(inner, ROOT_INO, OsStr::new("hard")).is_err());
    assert!(f
        .share
        .rename(
            d,
            OsStr::new("f"),
            ROOT_INO,
            OsStr::new("stolen"),
            RenameFlags::empty()
        )
        .is_err());
    assert!(f
        .share
        .create_file(d, OsStr::new("c"), 0o644, libc::O_WRONLY)
        .is_err());
    assert_eq!(f.share.open_dir(d), Err(Errno::NOTDIR));
    // Nothing outside was read, changed or created.
    assert_eq!(
        fs::read(f.outside.path().join("f")).expect("outside"),
        b"outside"
    );
    let mut names: Vec<_> = fs::read_dir(f.outside.path())
        .expect("outside dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["f"]);
    assert!(!f.root.path().join("stolen").exists() && !f.root.path().join("hard").exists());
}

#[test]
fn read_only_refuses_on_the_host_side() {
    let f = fixture(true);
    let d = lookup(&f.share, ROOT_INO, "d").expect("d");
    let inner = lookup(&f.share, d, "f").expect("d/f");
    let rofs = Some(Errno::ROFS);
    assert_eq!(f.share.open_file(inner, libc::O_WRONLY).err(), rofs);
    assert_eq!(
        f.share
            .open_file(inner, libc::O_RDONLY | libc::O_TRUNC)
            .err(),
        rofs
    );
    let chown = AttrChanges {
        chown: true,
        ..no_changes()
    };
    assert_eq!(f.share.set_attr(inner, &chown).err(), rofs);
    assert_eq!(f.share.make_dir(d, OsStr::new("x"), 0o755).err(), rofs);
    assert_eq!(f.share.remove(d, OsStr::new("f"), false).err(), rofs);
    assert_eq!(
        f.share
            .create_file(d, OsStr::new("c"), 0o644, libc::O_WRONLY)
            .err(),
        rofs
    );
    let fh = f.share.open_file(inner, libc::O_RDONLY).expect("read open");
    assert_eq!(f.share.write(fh, 0, b"x").err(), rofs);
    assert_eq!(f.share.read(fh, 0, 100).expect("read"), b"inside");
    assert_eq!(
        f.share.set_attr(inner, &no_changes()).map(|a| a.size),
        Ok(6)
    );
}
