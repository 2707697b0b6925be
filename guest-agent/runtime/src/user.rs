//! Users and groups of an image: `/etc/passwd` and `/etc/group` parsing and
//! docker-style resolution of a `--user` string.

use std::path::{Path, PathBuf};

use crate::error::RuntimeError;

/// The ids a user string resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, as dockerd sets them: the primary gid first, then (without
    /// an explicit group) every group in `/etc/group` listing the user by name.
    pub additional_gids: Vec<u32>,
    /// Home directory from passwd (`/` when unknown).
    pub home: PathBuf,
}

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parses passwd text; malformed lines and comments are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].trim().parse().ok()?,
                gid: f[3].trim().parse().ok()?,
                home: f.get(5).copied().unwrap_or("").to_owned(),
                shell: f.get(6).copied().unwrap_or("").to_owned(),
            })
        })
        .collect()
}

/// Parses group text; malformed lines and comments are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 || f[0].is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].trim().parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) against
/// the parsed files, like docker: an unknown name is an error, an unknown
/// numeric uid is allowed (gid 0, home `/`).
pub fn resolve(
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
    spec: &str,
) -> Result<ResolvedUser, RuntimeError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|e| e.uid == uid),
        Err(_) => Some(
            passwd
                .iter()
                .find(|e| e.name == user_part)
                .ok_or_else(|| RuntimeError::UserNotFound(user_part.to_owned()))?,
        ),
    };
    let uid = match entry {
        Some(e) => e.uid,
        None => user_part
            .parse()
            .map_err(|_| RuntimeError::UserNotFound(user_part.to_owned()))?,
    };
    let mut gid = entry.map(|e| e.gid).unwrap_or(0);
    let home = entry
        .map(|e| e.home.as_str())
        .filter(|h| !h.is_empty())
        .unwrap_or("/");
    let mut additional_gids = Vec::new();
    match group_part {
        Some(g) if !g.is_empty() => {
            gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| RuntimeError::GroupNotFound(g.to_owned()))?,
            };
        }
        _ => {
            // Only without an explicit group: the user's supplementary groups.
            if let Some(e) = entry {
                for group in groups.iter().filter(|g| g.members.contains(&e.name)) {
                    if group.gid != gid && !additional_gids.contains(&group.gid) {
                        additional_gids.push(group.gid);
                    }
                }
            }
        }
    }
    additional_gids.insert(0, gid);
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: PathBuf::from(home),
    })
}

/// Resolves `spec` against `<rootfs>/etc/passwd` and `<rootfs>/etc/group`
/// (missing files read as empty).
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<ResolvedUser, RuntimeError> {
    let read = |name: &str| -> Result<String, RuntimeError> {
        let path = rootfs.join("etc").join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(RuntimeError::io("read", path, e)),
        }
    };
    resolve(
        &parse_passwd(&read("passwd")?),
        &parse_group(&read("group")?),
        spec,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
broken line
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
app:x:1000:1000::/home/app:/bin/sh
";
    const GROUP: &str = "\
root:x:0:
wheel:x:10:root,app
app:x:1000:
audio:x:29:app
nogroup:x:65534:
";

    fn resolve_str(spec: &str) -> Result<ResolvedUser, RuntimeError> {
        resolve(&parse_passwd(PASSWD), &parse_group(GROUP), spec)
    }

    #[test]
    fn parses_files() {
        let p = parse_passwd(PASSWD);
        assert_eq!(p.len(), 4);
        assert_eq!(p[3].name, "app");
        assert_eq!(p[3].home, "/home/app");
        let g = parse_group(GROUP);
        assert_eq!(g[1].members, vec!["root", "app"]);
        assert!(g[0].members.is_empty());
    }

    #[test]
    fn empty_is_root() {
        let u = resolve_str("").unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert_eq!(u.home, Path::new("/root"));
        assert_eq!(u.additional_gids, vec![0, 10]);
    }

    #[test]
    fn by_name_with_supplementary_groups() {
        let u = resolve_str("app").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![1000, 10, 29]);
        assert_eq!(u.home, Path::new("/home/app"));
    }

    #[test]
    fn numeric_uid_known_and_unknown() {
        let u = resolve_str("65534").unwrap();
        assert_eq!((u.uid, u.gid), (65534, 65534));
        let u = resolve_str("4242").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
        assert_eq!(u.home, Path::new("/"));
        assert_eq!(u.additional_gids, vec![0]);
    }

    #[test]
    fn explicit_group() {
        let u = resolve_str("app:audio").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 29));
        assert_eq!(u.additional_gids, vec![29]);
        let u = resolve_str("4242:77").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 77));
        // dockerd: `-u 1000:1000` gives `groups=1000`.
        assert_eq!(u.additional_gids, vec![77]);
        let u = resolve_str(":10").unwrap();
        assert_eq!((u.uid, u.gid), (0, 10));
    }

    #[test]
    fn unknown_names_fail_like_docker() {
        let e = resolve_str("nosuch").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user nosuch: no matching entries in passwd file"
        );
        let e = resolve_str("app:nosuch").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find group nosuch: no matching entries in group file"
        );
    }

    #[test]
    fn missing_files_allow_numeric_only() {
        let dir = tempfile::tempdir().unwrap();
        let u = resolve_user(dir.path(), "123:456").unwrap();
        assert_eq!((u.uid, u.gid), (123, 456));
        assert!(resolve_user(dir.path(), "app").is_err());
    }
}
