//! A few network namespaces created ahead of time.
//!
//! Creating a network namespace costs the kernel one to several
//! milliseconds (more while other namespaces are being torn down), the
//! largest part of an attach. The pool keeps spare namespaces and refills
//! itself on a background thread, so an attach only bind-mounts one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::netns::UnpinnedNetns;

struct PoolInner {
    spare: Mutex<Vec<UnpinnedNetns>>,
    size: usize,
    refilling: AtomicBool,
    closed: AtomicBool,
}

impl PoolInner {
    fn spare_count(&self) -> usize {
        self.spare.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn wants_more(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && self.spare_count() < self.size
    }
}

/// Spare namespaces, refilled in the background up to `size`.
pub(crate) struct NetnsPool {
    inner: Arc<PoolInner>,
}

impl NetnsPool {
    /// A pool of `size` namespaces (0 disables it); starts filling at once.
    pub fn new(size: usize) -> Self {
        let pool = NetnsPool {
            inner: Arc::new(PoolInner {
                spare: Mutex::new(Vec::with_capacity(size)),
                size,
                refilling: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            }),
        };
        pool.refill();
        pool
    }

    /// A spare namespace, or a new one if the pool is empty.
    pub fn take(&self) -> std::io::Result<UnpinnedNetns> {
        let spare = self
            .inner
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        self.refill();
        match spare {
            Some(netns) => Ok(netns),
            None => UnpinnedNetns::new(),
        }
    }

    fn refill(&self) {
        if !self.inner.wants_more() || self.inner.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("netns-pool".into())
            .spawn(move || loop {
                let mut failed = false;
                while inner.wants_more() {
                    match UnpinnedNetns::new() {
                        Ok(netns) => inner
                            .spare
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(netns),
                        Err(e) => {
                            tracing::warn!(error = %e, "pre-creating a network namespace");
                            failed = true;
                            break;
                        }
                    }
                }
                inner.refilling.store(false, Ordering::Release);
                // A take() may have come between the last check and the store.
                if failed || !inner.wants_more() || inner.refilling.swap(true, Ordering::AcqRel) {
                    return;
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "starting the namespace pool thread");
            self.inner.refilling.store(false, Ordering::Release);
        }
    }
}

impl Drop for NetnsPool {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
