//! The one `newc` cpio writer in the tree: the format the Linux kernel unpacks as an
//! initramfs. The guest agent's initramfs, the test inits (`vmrun-vmtest`) and the nested-KVM
//! test host (`vmrun-kvmhost`) are all written through [`CpioWriter`].
//!
//! Written here rather than taken from a crate: the kernel needs only the `newc` subset
//! (regular files, directories, symlinks, device nodes, no hard links), entries are streamed
//! from files without holding them in memory, and the crates on crates.io either buffer whole
//! archives or pull in far more than these ~200 lines.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// File type bits of a cpio `mode`.
pub mod mode {
    /// Regular file.
    pub const FILE: u32 = 0o100000;
    /// Directory.
    pub const DIR: u32 = 0o040000;
    /// Symbolic link.
    pub const SYMLINK: u32 = 0o120000;
    /// Character device.
    pub const CHAR_DEVICE: u32 = 0o020000;
    /// Block device.
    pub const BLOCK_DEVICE: u32 = 0o060000;
}

/// Errors writing an archive.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    /// A name the kernel would not unpack: empty, absolute, or with `..`/`.` components.
    #[error("invalid cpio entry name {0:?}: names are relative paths without . or ..")]
    InvalidName(String),
    /// A file larger than the format's 32-bit size field.
    #[error("{0}: {1} bytes is more than a newc entry holds (4 GiB)")]
    TooLarge(String, u64),
    /// The same name twice.
    #[error("duplicate cpio entry {0:?}")]
    Duplicate(String),
    /// Reading a source file or writing the archive.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> CpioError {
    let context = context.into();
    move |source| CpioError::Io { context, source }
}

/// Streams a `newc` archive into `W`. Parent directories of every entry are added
/// automatically (mode 0755) unless added before. Call [`CpioWriter::finish`] to write the
/// trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
    names: BTreeSet<String>,
}

impl CpioWriter<io::BufWriter<File>> {
    /// A writer into a new file at `path` (truncated if it exists).
    pub fn create(path: &Path) -> Result<Self, CpioError> {
        let file = File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
        Ok(Self::new(io::BufWriter::new(file)))
    }
}

impl<W: Write> CpioWriter<W> {
    /// A writer with nothing written yet.
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            next_ino: 1,
            names: BTreeSet::new(),
        }
    }

    /// A directory (`perm` like 0o755).
    pub fn dir(&mut self, name: &str, perm: u32) -> Result<(), CpioError> {
        let name = self.claim(name)?;
        self.entry(&name, mode::DIR | perm, (0, 0), 0, &mut io::empty())
    }

    /// A regular file with `data`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<(), CpioError> {
        let name = self.claim(name)?;
        let mut data = data;
        self.entry(
            &name,
            mode::FILE | perm,
            (0, 0),
            data.len() as u64,
            &mut data,
        )
    }

    /// A regular file copied from `source` on this host (streamed, not buffered).
    pub fn file_from(&mut self, name: &str, perm: u32, source: &Path) -> Result<(), CpioError> {
        let context = format!("reading {}", source.display());
        let mut f = File::open(source).map_err(io_err(context.clone()))?;
        let len = f.metadata().map_err(io_err(context))?.len();
        let name = self.claim(name)?;
        self.entry(&name, mode::FILE | perm, (0, 0), len, &mut f)
    }

    /// A symbolic link pointing at `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> Result<(), CpioError> {
        let name = self.claim(name)?;
        let mut t = target.as_bytes();
        self.entry(&name, mode::SYMLINK | 0o777, (0, 0), t.len() as u64, &mut t)
    }

    /// A character device node (`/dev/console` is 5:1).
    pub fn char_device(
        &mut self,
        name: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        let name = self.claim(name)?;
        self.entry(
            &name,
            mode::CHAR_DEVICE | perm,
            (major, minor),
            0,
            &mut io::empty(),
        )
    }

    /// Writes the trailer and returns the sink and the archive's length.
    pub fn finish(mut self) -> Result<(W, u64), CpioError> {
        self.header("TRAILER!!!", 0, (0, 0), 0, 0)?;
        self.out.flush().map_err(io_err("writing the archive"))?;
        Ok((self.out, self.written))
    }

    /// Checks `name`, adds missing parent directories, records it.
    fn claim(&mut self, name: &str) -> Result<String, CpioError> {
        let name = name.trim_start_matches("./");
        if name.is_empty()
            || name.starts_with('/')
            || name
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(CpioError::InvalidName(name.to_string()));
        }
        if self.names.contains(name) {
            return Err(CpioError::Duplicate(name.to_string()));
        }
        let mut parent = String::new();
        let components: Vec<&str> = name.split('/').collect();
        for c in &components[..components.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(c);
            if self.names.insert(parent.clone()) {
                let p = parent.clone();
                self.entry(&p, mode::DIR | 0o755, (0, 0), 0, &mut io::empty())?;
            }
        }
        self.names.insert(name.to_string());
        Ok(name.to_string())
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        rdev: (u32, u32),
        len: u64,
        data: &mut dyn Read,
    ) -> Result<(), CpioError> {
        let size = u32::try_from(len).map_err(|_| CpioError::TooLarge(name.to_string(), len))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(name, mode, rdev, size, ino)?;
        let copied = io::copy(&mut data.take(len), &mut self.out)
            .map_err(io_err(format!("writing cpio entry {name}")))?;
        if copied != len {
            return Err(CpioError::Io {
                context: format!("cpio entry {name}"),
                source: io::Error::new(io::ErrorKind::UnexpectedEof, "source shrank while read"),
            });
        }
        self.written += copied;
        self.pad()
    }

    fn header(
        &mut self,
        name: &str,
        mode: u32,
        rdev: (u32, u32),
        size: u32,
        ino: u32,
    ) -> Result<(), CpioError> {
        let nlink = if mode & mode::DIR == mode::DIR && mode & mode::FILE == 0 {
            2
        } else {
            1
        };
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        let mut h = Vec::with_capacity(110 + name.len() + 4);
        h.extend_from_slice(b"070701");
        for f in fields {
            h.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        h.extend_from_slice(name.as_bytes());
        h.push(0);
        self.out
            .write_all(&h)
            .map_err(io_err("writing the archive"))?;
        self.written += h.len() as u64;
        self.pad()
    }

    fn pad(&mut self) -> Result<(), CpioError> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.out
            .write_all(&[0u8; 3][..n])
            .map_err(io_err("writing the archive"))?;
        self.written += n as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
