use super::*;

fn archive(build: impl FnOnce(&mut CpioWriter<Vec<u8>>)) -> Vec<u8> {
    let mut w = CpioWriter::new(Vec::new());
    build(&mut w);
    let (out, len) = w.finish().unwrap();
    assert_eq!(out.len() as u64, len);
    out
}

#[test]
fn entries_are_aligned_and_end_with_the_trailer() {
    let out = archive(|w| w.file("init", 0o755, b"abc").unwrap());
    assert_eq!(out.len() % 4, 0);
    assert!(out.starts_with(b"070701"));
    // header (110) + "init\0" padded to 116 + data padded to 4 → next header at 120
    assert_eq!(&out[120..126], b"070701");
    // file size field (7th) of the first entry is 3; mode is a regular file 0755
    assert_eq!(&out[6 + 6 * 8..6 + 7 * 8], b"00000003");
    assert_eq!(&out[6 + 8..6 + 2 * 8], b"000081ed");
    assert!(String::from_utf8_lossy(&out).contains("TRAILER!!!"));
}

#[test]
fn parents_are_added_once_before_their_children() {
    let out = archive(|w| {
        w.file("lib/modules/a.ko", 0o644, b"x").unwrap();
        w.file("lib/modules/b.ko", 0o644, b"y").unwrap();
    });
    let text = String::from_utf8_lossy(&out);
    let lib = text.find("lib\0").unwrap();
    let modules = text.find("lib/modules\0").unwrap();
    let a = text.find("lib/modules/a.ko\0").unwrap();
    assert!(lib < modules && modules < a);
    assert_eq!(text.matches("lib/modules\0").count(), 1);
}

#[test]
fn bad_and_duplicate_names_are_refused() {
    let mut w = CpioWriter::new(Vec::new());
    for bad in ["", "/abs", "a/../b", "a//b"] {
        assert!(
            matches!(w.file(bad, 0o644, b""), Err(CpioError::InvalidName(_))),
            "{bad}"
        );
    }
    w.dir("dev", 0o755).unwrap();
    assert!(matches!(w.dir("dev", 0o755), Err(CpioError::Duplicate(_))));
}

#[test]
fn files_stream_from_disk_and_the_kernel_format_round_trips_through_cpio() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big");
    let data: Vec<u8> = (0..100_003u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let out = archive(|w| {
        w.dir("dev", 0o755).unwrap();
        w.char_device("dev/console", 0o600, 5, 1).unwrap();
        w.file_from("bin/big", 0o755, &src).unwrap();
        w.symlink("sbin/init", "/bin/big").unwrap();
    });
    // GNU cpio, where installed, reads what we wrote.
    let Ok(mut child) = std::process::Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("cpio not installed: checked the header only");
        return;
    };
    child.stdin.take().unwrap().write_all(&out).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read(dir.path().join("bin/big")).unwrap(), data);
    assert_eq!(
        std::fs::read_link(dir.path().join("sbin/init")).unwrap(),
        Path::new("/bin/big")
    );
}
