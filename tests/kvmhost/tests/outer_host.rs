//! The nested KVM host itself: a job runs with a real /dev/kvm, its exit status, output and
//! result files come back; a hung job is killed at its timeout with the serial log shown.

use std::time::Duration;

use vmrun_kvmhost::{Job, KvmHost, RunError};

fn host() -> Option<KvmHost> {
    match KvmHost::get() {
        Ok(h) => Some(h),
        Err(skip) => {
            skip.report();
            None
        }
    }
}

#[test]
fn a_job_sees_real_kvm_and_its_results_come_back() {
    let Some(host) = host() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    std::fs::write(&input, "carried in\n").unwrap();
    let job = Job::new(
        "test -c /dev/kvm && echo kvm ok; grep -c processor /proc/cpuinfo; \
         cat /data/input.txt; grep -q svm /proc/cpuinfo && echo svm; \
         echo $GREETING >/kvmhost/results/greeting.txt; exit 3",
    )
    .file(&input, "/data/input.txt")
    .env("GREETING", "it's a result")
    .timeout(Duration::from_secs(120));
    let outcome = host.run(&job).unwrap();
    assert_eq!(outcome.exit_code, 3, "serial:\n{}", outcome.serial);
    assert!(
        outcome.output.contains("kvm ok\n2\ncarried in\nsvm\n"),
        "{}",
        outcome.output
    );
    assert_eq!(outcome.files["greeting.txt"], b"it's a result\n");
    assert!(outcome.boot < outcome.elapsed);
    eprintln!(
        "outer boot {:?}, whole run {:?}",
        outcome.boot, outcome.elapsed
    );
}

#[test]
fn a_hung_job_is_killed_at_its_timeout_and_shows_the_serial_log() {
    let Some(host) = host() else { return };
    let job = Job::new("echo about to hang; sleep 600").timeout(Duration::from_secs(25));
    match host.run(&job) {
        Err(RunError::Timeout { after, serial }) => {
            assert_eq!(after, Duration::from_secs(25));
            assert!(serial.contains("about to hang"), "{serial}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}
