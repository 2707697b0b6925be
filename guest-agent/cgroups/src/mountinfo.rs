//! Finding cgroup mounts in `/proc/self/mountinfo` (the way youki's libcgroups does it).

use std::path::{Path, PathBuf};

use crate::fs::read_file;
use crate::CgroupError;

/// The file the kernel describes our mount namespace in.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One cgroup filesystem mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The path inside the hierarchy that is mounted there ("/" unless bind-mounted or in a
    /// cgroup namespace).
    pub root: PathBuf,
    /// `true` for cgroup2, `false` for a v1 hierarchy.
    pub v2: bool,
    /// For v1: the controllers of this hierarchy ("cpu", "cpuacct", "memory", "name=systemd").
    pub controllers: Vec<String>,
}

/// Reads and parses `/proc/self/mountinfo`, keeping only cgroup and cgroup2 mounts.
pub fn cgroup_mounts() -> Result<Vec<CgroupMount>, CgroupError> {
    let path = Path::new(MOUNTINFO);
    let content = read_file(path)?;
    parse_cgroup_mounts(path, &content)
}

/// Parses mountinfo text (see proc(5)), keeping only cgroup and cgroup2 mounts.
pub fn parse_cgroup_mounts(path: &Path, content: &str) -> Result<Vec<CgroupMount>, CgroupError> {
    let mut mounts = Vec::new();
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let (pre, post) = line
            .split_once(" - ")
            .ok_or_else(|| CgroupError::parse(path, line))?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 6 || post.len() < 3 {
            return Err(CgroupError::parse(path, line));
        }
        let fstype = post[0];
        let v2 = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            post[2]
                .split(',')
                .filter(|opt| is_controller_option(opt))
                .map(str::to_string)
                .collect()
        };
        mounts.push(CgroupMount {
            mount_point: PathBuf::from(unescape(pre[4])),
            root: PathBuf::from(unescape(pre[3])),
            v2,
            controllers,
        });
    }
    Ok(mounts)
}

/// Super options of a v1 cgroup mount mix controller names with mount flags.
fn is_controller_option(opt: &str) -> bool {
    !matches!(
        opt,
        "rw" | "ro" | "noprefix" | "clone_children" | "xattr" | "cpuset_v2_mode" | "favordynmods"
    ) && !opt.starts_with("release_agent=")
}

/// Undoes the octal escapes (`\040` for a space) the kernel uses in mountinfo paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let oct = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = oct.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:7 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd,release_agent=/x
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 /a\\040b /mnt/my\\040dir rw - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn parses_hybrid_layout() {
        let mounts = parse_cgroup_mounts(Path::new("x"), HYBRID).unwrap();
        assert_eq!(mounts.len(), 6);
        assert_eq!(mounts[0].mount_point, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(mounts[0].controllers, vec!["cpu"]);
        assert_eq!(mounts[2].controllers, vec!["memory"]);
        assert_eq!(mounts[3].controllers, vec!["name=systemd"]);
        assert!(mounts[4].v2);
        assert_eq!(
            mounts[4].mount_point,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        assert_eq!(mounts[5].mount_point, PathBuf::from("/mnt/my dir"));
        assert_eq!(mounts[5].root, PathBuf::from("/a b"));
        assert_eq!(mounts[5].controllers, vec!["cpu", "cpuacct"]);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_cgroup_mounts(Path::new("x"), "nonsense line\n").is_err());
    }

    #[test]
    fn reads_this_machine() {
        // Any Linux machine running these tests has a mountinfo; we only check it parses.
        cgroup_mounts().unwrap();
    }
}
