//! Running the current test where KVM boots Linux: here on hardware KVM, else inside the
//! outer host by re-running this test binary there, filtered to this one test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vmrun_test_skip::Skip;

use crate::job::Job;
use crate::outer::{KvmHost, RunError};

/// Set (to `1`) in the environment of a test re-run inside the outer host.
const INSIDE_ENV: &str = "VMRUN_KVMHOST_INSIDE";
/// `NAME=PATH;NAME=PATH…`: the inputs of a test re-run inside.
const INPUTS_ENV: &str = "VMRUN_KVMHOST_INPUTS";
/// Where inputs live inside the outer host.
const INPUTS_DIR: &str = "/kvmhost/inputs";

/// Whether this process runs inside the outer host (a re-run test).
pub fn inside_outer_host() -> bool {
    std::env::var_os(INSIDE_ENV).is_some_and(|v| v == "1")
}

/// Named files a nested test needs (kernels, initramfs images, binaries, disks): prepared
/// on this host, copied into the outer host, found under the same names there.
#[derive(Debug, Clone, Default)]
pub struct NestedInputs {
    files: BTreeMap<String, (PathBuf, bool)>,
    timeout: Option<Duration>,
}

impl NestedInputs {
    /// No inputs.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file, under `name` (letters, digits, `_`, `-`, `.`).
    pub fn file(mut self, name: &str, path: impl Into<PathBuf>) -> Self {
        self.files.insert(name.to_string(), (path.into(), false));
        self
    }

    /// An executable (carried with its shared libraries, debug info stripped).
    pub fn binary(mut self, name: &str, path: impl Into<PathBuf>) -> Self {
        self.files.insert(name.to_string(), (path.into(), true));
        self
    }

    /// The nested run's limit (outer boot included); 180 s unless set.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The path of input `name` where the body runs.
    ///
    /// # Panics
    /// When no input has that name: a mistake in the test.
    pub fn path(&self, name: &str) -> &Path {
        match self.files.get(name) {
            Some((p, _)) => p,
            None => panic!("nested test input {name:?} was not prepared"),
        }
    }

    fn from_env() -> Self {
        let mut inputs = NestedInputs::new();
        let list = std::env::var(INPUTS_ENV).unwrap_or_default();
        for pair in list.split(';').filter(|p| !p.is_empty()) {
            if let Some((name, path)) = pair.split_once('=') {
                inputs
                    .files
                    .insert(name.to_string(), (PathBuf::from(path), false));
            }
        }
        inputs
    }
}

/// Runs `body` where KVM can boot Linux:
/// - inside the outer host (this is the re-run): with the inputs found there;
/// - on a host whose `/dev/kvm` boots Linux (hardware KVM): here, with `prepare`'s inputs;
/// - otherwise: `prepare` here, then this very test binary re-runs this one test inside the
///   nested KVM host, and this test fails with the nested run's output and serial log if
///   that run fails.
///
/// `prepare` or the nested host being unavailable is a visible skip
/// ([`vmrun_test_skip::report`]). Call it from a `#[test]` function directly: the test's
/// name is taken from the thread libtest runs it on.
pub fn nested_test(
    prepare: impl FnOnce() -> Result<NestedInputs, Skip>,
    body: impl FnOnce(&NestedInputs),
) {
    if inside_outer_host() {
        return body(&NestedInputs::from_env());
    }
    let inputs = match prepare() {
        Ok(i) => i,
        Err(skip) => return skip.report(),
    };
    if vmrun_vmm::pvm::kernel_boot_unsupported_reason().is_none() {
        return body(&inputs);
    }
    let host = match KvmHost::get() {
        Ok(h) => h,
        Err(skip) => return skip.report(),
    };
    let test = vmrun_test_skip::current_test_name();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => panic!("cannot find the test binary to re-run: {e}"),
    };
    let mut job = Job::new(format!(
        "/kvmhost/test-binary --exact '{test}' --nocapture --test-threads 1"
    ))
    .binary(&exe, "/kvmhost/test-binary")
    .env(INSIDE_ENV, "1")
    .env("RUST_BACKTRACE", "1")
    .timeout(inputs.timeout.unwrap_or(Duration::from_secs(180)));
    let mut list = String::new();
    for (name, (path, is_binary)) in &inputs.files {
        let inside = format!("{INPUTS_DIR}/{name}");
        job = if *is_binary {
            job.binary(path, &inside)
        } else {
            job.file(path, &inside)
        };
        list.push_str(&format!("{name}={inside};"));
    }
    job = job.env(INPUTS_ENV, list);
    if let Ok(v) = std::env::var("VMRUN_VMM_LOG") {
        job = job.env("VMRUN_VMM_LOG", v);
    }
    // QEMU TCG's nested SVM now and then stalls a whole run, the outer kernel included,
    // or crashes the outer (Debian) kernel itself (README, "nested KVM host"): such a
    // run gets one more try, said out loud with its serial log. A failure of the test
    // (a non-zero exit of the test binary inside) is retried only when it names one of
    // the inner guests' emulation faults ([`NESTED_EMULATION_FAULTS`]).
    let again = |why: String, serial: &str| {
        eprintln!(
            "nested KVM host: {test} {why}; running it once more. That run's serial \
             log:\n{}",
            indent(serial)
        );
        match host.run(&job) {
            Ok(o) => o,
            Err(e) => panic!("nested KVM run of {test} failed twice: {e}"),
        }
    };
    let outcome = match host.run(&job) {
        Ok(o) => o,
        Err(RunError::Timeout { after, serial }) => {
            again(format!("did not finish within {after:?}"), &serial)
        }
        // The outer host died under the test (the test's own failures come back as an
        // exit code, never as this): its kernel panicked, or it reset (QEMU exits then,
        // `-no-reboot`), as TCG's nested SVM has now and then made it.
        Err(RunError::Qemu { status, serial }) => {
            let how = if serial.contains(OUTER_KERNEL_PANIC) {
                "a panic of the outer host's kernel"
            } else {
                "the outer host stopping (QEMU ended; a reset of the outer guest, say)"
            };
            again(format!("was cut short by {how} (QEMU {status})"), &serial)
        }
        Err(e) => panic!("nested KVM run of {test} failed: {e}"),
    };
    // A test that failed on a known fault of nested SVM under TCG (an inner guest that
    // reset while booting, or whose agent stalled) is run once more, out loud: a fault
    // of ours would fail the second run too.
    let outcome = match NESTED_EMULATION_FAULTS
        .iter()
        .find(|m| outcome.exit_code != 0 && outcome.output.contains(*m))
    {
        Some(marker) => {
            eprintln!(
                "nested KVM host: {test} failed with \"{marker}\", a fault nested SVM \
                 under TCG shows now and then; running it once more. That run's output:\n{}",
                indent(&outcome.output)
            );
            match host.run(&job) {
                Ok(o) => o,
                Err(e) => panic!("nested KVM run of {test} failed the second time: {e}"),
            }
        }
        None => outcome,
    };
    // Indented, so that the inner libtest's "test result" lines are not read as this run's.
    let indented = indent(&outcome.output);
    eprintln!(
        "nested KVM host: booted in {:.1?}, whole run {:.1?}; the test's output:\n{indented}",
        outcome.boot, outcome.elapsed
    );
    assert_eq!(
        outcome.exit_code,
        0,
        "{test} failed inside the nested KVM host (exit {}); serial log:\n{}",
        outcome.exit_code,
        indent(&outcome.serial)
    );
    // A re-run that filtered to nothing would pass vacuously.
    assert!(
        outcome.output.contains("1 passed"),
        "{test} did not run inside the nested KVM host:\n{}",
        outcome.output
    );
    if let Some(skipped) = outcome
        .output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("SKIPPED {test}: ")))
    {
        vmrun_test_skip::report(format!("inside the nested KVM host: {skipped}"));
    }
}

/// What a failed test inside the nested host says when an inner guest met a fault of
/// the emulation rather than of our code, as seen in CI runs: the guest reset within a
/// second or two of its start (`the guest rebooted`, nothing on its console), or its
/// agent was not reached for a minute while the same boot took 5 s in the run before.
const NESTED_EMULATION_FAULTS: &[&str] = &[
    "the VM stopped while booting: the guest rebooted",
    "the guest agent did not answer within",
];

/// What the outer host's kernel prints when it panics (it then powers the VM off). Our
/// guests' kernels log to their own serial files inside the outer host, not here.
const OUTER_KERNEL_PANIC: &str = "Kernel panic - not syncing";

/// `text` with each line behind `  | `.
fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  | {l}\n")).collect()
}
