//! Synchronous disk work called from async code (a record written inside a request
//! handler), run so that it does not stall the runtime's worker thread: on the
//! multi-threaded runtime the thread hands its other tasks to the rest of the pool for
//! the duration (`tokio::task::block_in_place`); elsewhere (a current-thread runtime in
//! tests, a plain thread) the work simply runs.

/// Runs `work`, moving this worker's other tasks elsewhere while it blocks.
pub fn off_worker<T>(work: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_anywhere() {
        assert_eq!(off_worker(|| 1), 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(async { off_worker(|| 2) }), 2);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        assert_eq!(
            rt.block_on(async { tokio::spawn(async { off_worker(|| 3) }).await.unwrap() }),
            3
        );
    }
}
