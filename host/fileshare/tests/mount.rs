//! A share mounted on this host through the kernel's FUSE and used with std::fs: the file
//! system behaves like the host directory, and the host sees every change at once.
//! Needs root and `/dev/fuse`; skips (visibly) without them.

mod support;

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use support::{errno_of, missing_requirement, mount_share, share_dir, Channel};

macro_rules! require_fuse {
    () => {
        if let Some(reason) = missing_requirement() {
            vmrun_test_skip::report(format_args!("{reason}"));
            return;
        }
    };
}

#[test]
fn read_write_append_truncate() {
    require_fuse!();
    let m = mount_share(share_dir(false, |_| {}), false, Channel::DevFuse);
    fs::write(m.at("f"), b"hello").expect("write through the mount");
    assert_eq!(fs::read(m.host("f")).expect("host read"), b"hello");
    let mut f = OpenOptions::new()
        .append(true)
        .open(m.at("f"))
        .expect("open for append");
    f.write_all(b" world").expect("append");
    drop(f);
    assert_eq!(fs::read(m.host("f")).expect("host read"), b"hello world");
    assert_eq!(fs::read(m.at("f")).expect("read back"), b"hello world");
    let f = OpenOptions::new()
        .write(true)
        .open(m.at("f"))
        .expect("open");
    f.set_len(4).expect("truncate");
    drop(f);
    assert_eq!(fs::read(m.host("f")).expect("host read"), b"hell");
    // Truncation by path (setattr without a handle), and O_TRUNC.
    nix::unistd::truncate(&m.at("f"), 2).expect("truncate(2)");
    assert_eq!(fs::read(m.host("f")).expect("host read"), b"he");
    fs::write(m.at("f"), b"x").expect("rewrite");
    assert_eq!(fs::read(m.host("f")).expect("host read"), b"x");
    // Writes and reads at offsets, larger than one max_write.
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(m.at("big"), &big).expect("big write");
    assert_eq!(fs::read(m.host("big")).expect("host read"), big);
    let mut f = fs::File::open(m.at("big")).expect("open big");
    f.seek(SeekFrom::Start(300_001)).expect("seek");
    let mut part = vec![0u8; 1000];
    f.read_exact(&mut part).expect("read at offset");
    assert_eq!(part, big[300_001..301_001]);
    drop(f);
    m.unmount();
}

#[test]
fn names_rename_delete_and_directories() {
    require_fuse!();
    let m = mount_share(share_dir(false, |_| {}), false, Channel::DevFuse);
    fs::create_dir(m.at("d")).expect("mkdir");
    fs::create_dir(m.at("d/sub")).expect("mkdir sub");
    fs::write(m.at("d/sub/f"), b"1").expect("write");
    let ino_before = fs::metadata(m.at("d/sub/f")).expect("stat").ino();
    assert_eq!(errno_of(fs::create_dir(m.at("d"))), libc::EEXIST);
    assert_eq!(errno_of(fs::remove_dir(m.at("d"))), libc::ENOTEMPTY);

    fs::rename(m.at("d"), m.at("e")).expect("rename a directory");
    assert!(!m.at("d").exists() && !m.host("d").exists());
    assert_eq!(fs::read(m.at("e/sub/f")).expect("moved file"), b"1");
    assert_eq!(fs::read(m.host("e/sub/f")).expect("moved on host"), b"1");
    let ino_after = fs::metadata(m.at("e/sub/f")).expect("stat").ino();
    assert_eq!(
        ino_before, ino_after,
        "a descendant keeps its inode across rename"
    );

    fs::write(m.at("a"), b"A").expect("a");
    fs::write(m.at("b"), b"B").expect("b");
    fs::rename(m.at("a"), m.at("b")).expect("rename over a file");
    assert!(!m.at("a").exists() && !m.host("a").exists());
    assert_eq!(fs::read(m.at("b")).expect("b"), b"A");

    fs::write(m.at("c"), b"C").expect("c");
    let noreplace = nix::fcntl::renameat2(
        None,
        &m.at("c"),
        None,
        &m.at("b"),
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    );
    assert_eq!(noreplace, Err(nix::errno::Errno::EEXIST));
    nix::fcntl::renameat2(
        None,
        &m.at("c"),
        None,
        &m.at("b"),
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .expect("exchange");
    assert_eq!(fs::read(m.host("b")).expect("b"), b"C");
    assert_eq!(fs::read(m.host("c")).expect("c"), b"A");

    fs::hard_link(m.at("b"), m.at("b2")).expect("link");
    assert_eq!(fs::metadata(m.host("b")).expect("stat").nlink(), 2);
    fs::remove_file(m.at("b")).expect("unlink");
    assert!(!m.host("b").exists());
    assert_eq!(fs::read(m.at("b2")).expect("the other link"), b"C");
    assert_eq!(errno_of(fs::read(m.at("b"))), libc::ENOENT);

    fs::remove_file(m.at("e/sub/f")).expect("unlink");
    fs::remove_dir(m.at("e/sub")).expect("rmdir");
    let mut names: Vec<String> = fs::read_dir(m.at(""))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["b2", "c", "e"]);
    m.unmount();
}

#[test]
fn a_large_directory_lists_completely() {
    require_fuse!();
    let share = share_dir(false, |root| {
        for i in 0..500 {
            fs::write(root.join(format!("file-with-a-long-name-{i:04}")), b"").expect("file");
        }
    });
    let m = mount_share(share, false, Channel::DevFuse);
    let count = fs::read_dir(m.at("")).expect("readdir").count();
    assert_eq!(count, 500);
    m.unmount();
}

#[test]
fn symlinks_are_returned_as_symlinks() {
    require_fuse!();
    let outside = tempfile::tempdir().expect("outside");
    fs::write(outside.path().join("file"), b"outside").expect("outside file");
    let outside_path = outside.path().to_path_buf();
    let share = share_dir(false, |root| {
        std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).expect("link");
        std::os::unix::fs::symlink(&outside_path, root.join("esc")).expect("link");
    });
    let m = mount_share(share, false, Channel::DevFuse);
    assert_eq!(
        fs::read_link(m.at("passwd")).expect("readlink"),
        Path::new("/etc/passwd")
    );
    assert!(fs::symlink_metadata(m.at("passwd"))
        .expect("lstat")
        .file_type()
        .is_symlink());
    let nofollow = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(m.at("passwd"));
    assert_eq!(errno_of(nofollow), libc::ELOOP);
    assert_eq!(fs::read_link(m.at("esc")).expect("readlink"), outside_path);

    std::os::unix::fs::symlink("../../somewhere", m.at("made")).expect("symlink via mount");
    assert_eq!(
        fs::read_link(m.host("made")).expect("host readlink"),
        Path::new("../../somewhere")
    );
    m.unmount();
}

#[test]
fn host_changes_are_seen_at_once() {
    require_fuse!();
    let m = mount_share(share_dir(false, |_| {}), false, Channel::DevFuse);
    fs::write(m.host("h"), b"one").expect("host write");
    assert_eq!(fs::read(m.at("h")).expect("read"), b"one");
    fs::write(m.host("h"), b"two, longer").expect("host rewrite");
    assert_eq!(fs::read(m.at("h")).expect("read"), b"two, longer");

    // Through a file kept open in the mount too.
    let mut open = fs::File::open(m.at("h")).expect("open");
    let mut first = String::new();
    open.read_to_string(&mut first).expect("read");
    OpenOptions::new()
        .append(true)
        .open(m.host("h"))
        .and_then(|mut f| f.write_all(b" + more"))
        .expect("host append");
    let mut rest = String::new();
    open.read_to_string(&mut rest).expect("read on");
    assert_eq!(rest, " + more");
    drop(open);

    fs::remove_file(m.host("h")).expect("host unlink");
    assert!(!m.at("h").exists());
    fs::create_dir(m.host("hd")).expect("host mkdir");
    assert!(m.at("hd").is_dir());
    fs::rename(m.host("hd"), m.host("hd2")).expect("host rename");
    assert!(!m.at("hd").exists() && m.at("hd2").is_dir());
    m.unmount();
}

#[test]
fn new_files_belong_to_the_share_owner() {
    require_fuse!();
    let m = mount_share(share_dir(true, |_| {}), false, Channel::DevFuse);
    fs::write(m.at("f"), b"x").expect("create");
    fs::create_dir(m.at("d")).expect("mkdir");
    std::os::unix::fs::symlink("f", m.at("l")).expect("symlink");
    nix::unistd::mkfifo(&m.at("p"), nix::sys::stat::Mode::from_bits_truncate(0o640))
        .expect("mkfifo");
    for name in ["f", "d", "l", "p"] {
        let host = fs::symlink_metadata(m.host(name)).expect("host lstat");
        assert_eq!((host.uid(), host.gid()), (1000, 1000), "{name} on the host");
        let seen = fs::symlink_metadata(m.at(name)).expect("lstat");
        assert_eq!(
            (seen.uid(), seen.gid()),
            (1000, 1000),
            "{name} in the mount"
        );
    }
    assert!(fs::symlink_metadata(m.host("p"))
        .expect("lstat")
        .file_type()
        .is_fifo_like());

    // chown is accepted and changes nothing on the host.
    std::os::unix::fs::chown(m.at("f"), Some(0), Some(0)).expect("chown");
    assert_eq!(fs::metadata(m.host("f")).expect("stat").uid(), 1000);

    // Modes are exact (no daemon umask), and never set-ID on a file.
    fs::set_permissions(m.at("f"), fs::Permissions::from_mode(0o4777)).expect("chmod");
    assert_eq!(
        fs::metadata(m.host("f")).expect("stat").mode() & 0o7777,
        0o777
    );
    let made = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(m.at("g"));
    drop(made.expect("create 0666"));
    let old_umask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    nix::sys::stat::umask(old_umask);
    let expected = 0o666 & !old_umask.bits();
    assert_eq!(
        fs::metadata(m.host("g")).expect("stat").mode() & 0o777,
        expected
    );
    // A device node is refused.
    let dev = nix::sys::stat::mknod(
        &m.at("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    );
    assert_eq!(dev, Err(nix::errno::Errno::EPERM));
    m.unmount();
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

#[test]
fn times_are_set_on_the_host() {
    require_fuse!();
    let m = mount_share(share_dir(false, |_| {}), false, Channel::DevFuse);
    fs::write(m.at("t"), b"x").expect("create");
    let when = std::time::UNIX_EPOCH + std::time::Duration::new(1_600_000_000, 123_000_000);
    let f = OpenOptions::new()
        .write(true)
        .open(m.at("t"))
        .expect("open");
    f.set_modified(when).expect("utimens");
    drop(f);
    assert_eq!(
        fs::metadata(m.host("t"))
            .expect("stat")
            .modified()
            .expect("mtime"),
        when
    );
    m.unmount();
}

#[test]
fn read_only_shares_refuse_every_change() {
    require_fuse!();
    let share = share_dir(false, |root| {
        fs::write(root.join("f"), b"keep").expect("file");
        fs::create_dir(root.join("d")).expect("dir");
    });
    let m = mount_share(share, true, Channel::DevFuse);
    assert_eq!(fs::read(m.at("f")).expect("reads work"), b"keep");
    let erofs = libc::EROFS;
    assert_eq!(errno_of(fs::write(m.at("new"), b"x")), erofs);
    assert_eq!(
        errno_of(OpenOptions::new().write(true).open(m.at("f"))),
        erofs
    );
    assert_eq!(
        errno_of(OpenOptions::new().append(true).open(m.at("f"))),
        erofs
    );
    assert_eq!(errno_of(fs::remove_file(m.at("f"))), erofs);
    assert_eq!(errno_of(fs::remove_dir(m.at("d"))), erofs);
    assert_eq!(errno_of(fs::create_dir(m.at("d2"))), erofs);
    assert_eq!(errno_of(fs::rename(m.at("f"), m.at("g"))), erofs);
    assert_eq!(errno_of(fs::hard_link(m.at("f"), m.at("g"))), erofs);
    assert_eq!(errno_of(std::os::unix::fs::symlink("f", m.at("l"))), erofs);
    let chmod = fs::set_permissions(m.at("f"), fs::Permissions::from_mode(0o600));
    assert_eq!(errno_of(chmod), erofs);
    assert_eq!(
        errno_of(nix::unistd::truncate(&m.at("f"), 0).map_err(std::io::Error::from)),
        erofs
    );
    assert_eq!(fs::read(m.host("f")).expect("host"), b"keep");
    let mut names: Vec<_> = fs::read_dir(m.host(""))
        .expect("host readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["d", "f"]);
    m.unmount();
}

#[test]
fn serves_through_a_seqpacket_relay() {
    require_fuse!();
    let m = mount_share(share_dir(true, |_| {}), false, Channel::SeqPacket);
    let big: Vec<u8> = (0..400_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(m.at("big"), &big).expect("write through the relay");
    assert_eq!(fs::read(m.host("big")).expect("host"), big);
    assert_eq!(fs::read(m.at("big")).expect("read back"), big);
    fs::create_dir_all(m.at("a/b/c")).expect("mkdir -p");
    assert_eq!(fs::metadata(m.host("a/b/c")).expect("host").uid(), 1000);
    let stat = nix::sys::statvfs::statvfs(&m.at("")).expect("statfs");
    assert!(stat.blocks() > 0);
    // The relay closes its end at the unmount: serve must end with Ok.
    m.unmount();
}

#[test]
fn shared_mmap_writes_reach_the_host() {
    require_fuse!();
    let m = mount_share(share_dir(false, |_| {}), false, Channel::DevFuse);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.at("mapped"))
        .expect("create");
    file.set_len(4096).expect("size");
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh shared mapping of 4096 bytes of an open file; no other mapping aliases
    // it, and the result is checked before use.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        addr,
        libc::MAP_FAILED,
        "{}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `addr` is a live, writable mapping of 4096 bytes.
    let mapped = unsafe { std::slice::from_raw_parts_mut(addr.cast::<u8>(), 4096) };
    mapped[..6].copy_from_slice(b"mapped");
    // SAFETY: the same mapping, synced then unmapped once; `mapped` is not used after.
    unsafe {
        assert_eq!(libc::msync(addr, 4096, libc::MS_SYNC), 0);
        assert_eq!(libc::munmap(addr, 4096), 0);
    }
    file.sync_all().expect("fsync");
    drop(file);
    assert_eq!(&fs::read(m.host("mapped")).expect("host")[..6], b"mapped");
    m.unmount();
}

#[test]
fn parallel_writers_each_get_their_file() {
    require_fuse!();
    let m = mount_share(share_dir(false, |_| {}), false, Channel::SeqPacket);
    std::thread::scope(|scope| {
        for t in 0..6 {
            let path = m.at(&format!("w{t}"));
            scope.spawn(move || {
                let data = vec![t as u8; 300_000];
                for _ in 0..3 {
                    fs::write(&path, &data).expect("parallel write");
                    assert_eq!(fs::read(&path).expect("parallel read"), data);
                }
            });
        }
    });
    for t in 0..6 {
        assert_eq!(
            fs::read(m.host(&format!("w{t}"))).expect("host"),
            vec![t as u8; 300_000]
        );
    }
    let f = OpenOptions::new()
        .write(true)
        .open(m.at("w0"))
        .expect("open");
    nix::fcntl::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 1 << 20)
        .expect("fallocate");
    f.sync_data().expect("fdatasync");
    drop(f);
    assert_eq!(fs::metadata(m.host("w0")).expect("host").len(), 1 << 20);
    m.unmount();
}

#[test]
fn an_unlinked_open_file_still_works() {
    require_fuse!();
    let m = mount_share(share_dir(false, |_| {}), false, Channel::DevFuse);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.at("gone"))
        .expect("create");
    f.write_all(b"still here").expect("write");
    fs::remove_file(m.at("gone")).expect("unlink");
    assert!(!m.host("gone").exists());
    assert_eq!(f.metadata().expect("fstat").len(), 10);
    f.set_len(5).expect("ftruncate after unlink");
    f.seek(SeekFrom::Start(0)).expect("seek");
    let mut back = String::new();
    f.read_to_string(&mut back).expect("read after unlink");
    assert_eq!(back, "still");
    drop(f);
    m.unmount();
}
