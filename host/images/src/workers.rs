//! [`run_bounded`]: a few worker threads over a queue of transfers (layer
//! downloads of a pull, layer uploads of a push), with progress events handed
//! back to the calling thread and the first failure cancelling the rest.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

/// Runs `work` on every job, at most `workers` at a time, and returns the
/// results in completion order. `work` gets a cancel flag to poll (set once
/// any job failed) and a sender for progress events, which `on_event`
/// receives on the calling thread while the jobs run. The first error wins;
/// jobs not yet started then never start.
pub(crate) fn run_bounded<J, R, E, P, W>(
    jobs: Vec<J>,
    workers: usize,
    work: W,
    mut on_event: impl FnMut(P),
) -> Result<Vec<R>, E>
where
    J: Send,
    R: Send,
    E: Send,
    P: Send,
    W: Fn(J, &AtomicBool, &mpsc::Sender<P>) -> Result<R, E> + Sync,
{
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let workers = workers.clamp(1, jobs.len());
    let queue = Mutex::new(jobs.into_iter().collect::<VecDeque<_>>());
    let results = Mutex::new(Vec::new());
    let first_error: Mutex<Option<E>> = Mutex::new(None);
    let cancel = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<P>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (queue, results, first_error, cancel, work) =
                (&queue, &results, &first_error, &cancel, &work);
            scope.spawn(move || loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some(job) = next else { break };
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
                match work(job, cancel, &tx) {
                    Ok(result) => results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(result),
                    Err(e) => {
                        cancel.store(true, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                        break;
                    }
                }
            });
        }
        drop(tx);
        for event in rx {
            on_event(event);
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    Ok(results.into_inner().unwrap_or_else(|e| e.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn every_job_runs_and_no_more_than_the_limit_at_once() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let mut events = Vec::new();
        let mut out = run_bounded(
            (0..12).collect(),
            3,
            |n: u32, _cancel, tx| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
                tx.send(n).unwrap();
                Ok::<_, String>(n * 2)
            },
            |n| events.push(n),
        )
        .unwrap();
        out.sort();
        assert_eq!(out, (0..12).map(|n| n * 2).collect::<Vec<_>>());
        events.sort();
        assert_eq!(events, (0..12).collect::<Vec<_>>());
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak > 1 && peak <= 3, "peak concurrency {peak}");
    }

    #[test]
    fn the_first_error_stops_jobs_not_yet_started() {
        let started = AtomicUsize::new(0);
        let err = run_bounded(
            (0..50).collect(),
            2,
            |n: u32, _cancel, _tx: &mpsc::Sender<()>| {
                started.fetch_add(1, Ordering::SeqCst);
                if n == 0 {
                    return Err(format!("job {n} failed"));
                }
                std::thread::sleep(Duration::from_millis(2));
                Ok(n)
            },
            |_| {},
        )
        .unwrap_err();
        assert_eq!(err, "job 0 failed");
        assert!(started.load(Ordering::SeqCst) < 50);
    }
}
