//! [`SubnetChoiceLock`]: one daemon at a time on a host chooses a subnet and makes its
//! bridge.
//!
//! A free subnet is one no host route is in ([`crate::plumbing::host_subnets`]), and a
//! bridge's route appears only once the bridge has its address. Two daemons on one host
//! (separate data roots, as test daemons and a user's second instance have) that choose at
//! the same moment would otherwise both take the first free subnet and route it twice.
//! dockerd has the same window between daemons; a host-wide `flock` closes it.

use std::fs::File;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::error::NetworkError;

/// Where the lock lives: `/run/lock` (tmpfs on Debian), else the temporary directory.
fn lock_path() -> std::path::PathBuf {
    let run_lock = Path::new("/run/lock");
    let dir = if run_lock.is_dir() {
        run_lock.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join("vmrun-subnets.lock")
}

/// Held while a subnet is chosen and its bridge given its address; released on drop.
pub(crate) struct SubnetChoiceLock {
    _lock: Flock<File>,
}

impl SubnetChoiceLock {
    /// Takes the lock, waiting while another daemon holds it.
    pub(crate) fn take() -> Result<Self, NetworkError> {
        let path = lock_path();
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| NetworkError::io(format!("open {}", path.display()), e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| {
            NetworkError::io(format!("lock {}", path.display()), errno.into())
        })?;
        Ok(SubnetChoiceLock { _lock: lock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_waits_for_the_first() {
        let first = SubnetChoiceLock::take().expect("first lock");
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _second = SubnetChoiceLock::take().expect("second lock");
            tx.send(()).expect("send");
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "the second taker got the lock while the first held it"
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("the second taker got the lock after the first let go");
        waiter.join().expect("waiter thread");
    }
}
