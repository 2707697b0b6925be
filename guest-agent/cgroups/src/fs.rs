//! Small helpers to read, write and parse cgroup interface files with errors that name the file.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Component, Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::CgroupError;

/// Writes `value` to an existing cgroup file (never creates it).
pub(crate) fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| CgroupError::io("open", path, e))?;
    file.write_all(value.as_bytes())
        .map_err(|e| CgroupError::io("write", path, e))
}

/// Reads a cgroup file to a string.
pub(crate) fn read_file(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|e| CgroupError::io("read", path, e))
}

/// Reads a cgroup file, giving `None` when it does not exist (controller absent or not enabled).
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CgroupError::io("read", path, e)),
    }
}

/// Parses a file holding one unsigned number; `None` if the file is absent.
pub(crate) fn read_u64_optional(path: &Path) -> Result<Option<u64>, CgroupError> {
    match read_optional(path)? {
        None => Ok(None),
        Some(s) => parse_u64(path, s.trim()).map(Some),
    }
}

/// Parses a file holding one number or "max"; `Ok(None)` means "max" or the file is absent.
pub(crate) fn read_limit_optional(path: &Path) -> Result<Option<u64>, CgroupError> {
    match read_optional(path)? {
        None => Ok(None),
        Some(s) if s.trim() == "max" => Ok(None),
        Some(s) => parse_u64(path, s.trim()).map(Some),
    }
}

pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64, CgroupError> {
    s.parse::<u64>().map_err(|_| CgroupError::parse(path, s))
}

/// Finds `key value` in a flat-keyed file (memory.stat, cpu.stat, memory.events, ...).
pub(crate) fn keyed_value(
    path: &Path,
    content: &str,
    key: &str,
) -> Result<Option<u64>, CgroupError> {
    for line in content.lines() {
        let mut it = line.split_whitespace();
        if it.next() == Some(key) {
            let value = it.next().ok_or_else(|| CgroupError::parse(path, line))?;
            return parse_u64(path, value).map(Some);
        }
    }
    Ok(None)
}

/// Reads `key` from a flat-keyed file; 0 when the file or the key is absent.
pub(crate) fn keyed_value_or_zero(path: &Path, key: &str) -> Result<u64, CgroupError> {
    match read_optional(path)? {
        None => Ok(0),
        Some(content) => Ok(keyed_value(path, &content, key)?.unwrap_or(0)),
    }
}

/// Reads the pids listed in a `cgroup.procs` file.
pub(crate) fn read_pids(path: &Path) -> Result<Vec<nix::unistd::Pid>, CgroupError> {
    let content = read_file(path)?;
    content
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse::<i32>()
                .map(nix::unistd::Pid::from_raw)
                .map_err(|_| CgroupError::parse(path, l))
        })
        .collect()
}

/// Turns an OCI cgroups path ("/vmrun/<id>" or "vmrun/<id>") into a path relative to a hierarchy
/// root, refusing "..".
pub(crate) fn relative_cgroup_path(cgroups_path: &Path) -> Result<PathBuf, CgroupError> {
    let mut out = PathBuf::new();
    for component in cgroups_path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(CgroupError::InvalidPath(cgroups_path.to_path_buf()))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(CgroupError::InvalidPath(cgroups_path.to_path_buf()));
    }
    Ok(out)
}

/// Creates a directory and its parents; an existing directory is fine.
pub(crate) fn create_dir_all(path: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(path).map_err(|e| CgroupError::io("mkdir", path, e))
}

/// Removes a cgroup directory, retrying while the kernel reports it busy (tasks still exiting).
/// A directory that does not exist is already removed.
pub(crate) fn remove_cgroup_dir(path: &Path) -> Result<(), CgroupError> {
    const RETRY_FOR: Duration = Duration::from_millis(1000);
    let start = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < RETRY_FOR => {
                thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(CgroupError::io("rmdir", path, e)),
        }
    }
}

/// Polls `check` until it returns true or `timeout` passes.
pub(crate) fn wait_until(
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<bool, CgroupError> {
    let start = Instant::now();
    loop {
        if check()? {
            return Ok(true);
        }
        if start.elapsed() >= timeout {
            return Ok(false);
        }
        thread::sleep(Duration::from_millis(2));
    }
}
