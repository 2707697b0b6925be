//! Runs one command inside the nested KVM host, for scripts (`bench/vmm.sh`) and debugging:
//!
//! ```text
//! cargo run -p vmrun-kvmhost --example kvmhost_run -- \
//!     [--file HOST:GUEST]... [--binary HOST:GUEST]... [--env K=V]... \
//!     [--timeout SECS] [--memory-mib MIB] [--results DIR] [--serial] -- COMMAND
//! ```
//! The command's output goes to stdout, files it left in `/kvmhost/results` to `--results`,
//! and the exit status is the command's. `--serial` prints the whole serial log to stderr.

use std::time::Duration;

use vmrun_kvmhost::{Job, KvmHost};

fn split(spec: &str) -> (String, String) {
    match spec.split_once(':') {
        Some((h, g)) => (h.to_string(), g.to_string()),
        None => {
            eprintln!("kvmhost_run: {spec:?} is not HOST:GUEST");
            std::process::exit(2);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut job_parts: Vec<(String, String, String)> = Vec::new();
    let mut timeout = 300u64;
    let mut memory = 2048u32;
    let mut results = None;
    let mut serial = false;
    let mut command = Vec::new();
    while let Some(a) = args.next() {
        let mut value = || {
            args.next().unwrap_or_else(|| {
                eprintln!("kvmhost_run: {a} needs a value");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--file" | "--binary" | "--env" => {
                let v = value();
                job_parts.push((a.clone(), v, String::new()));
            }
            "--timeout" => timeout = value().parse().unwrap_or(timeout),
            "--memory-mib" => memory = value().parse().unwrap_or(memory),
            "--results" => results = Some(value()),
            "--serial" => serial = true,
            "--" => {
                command.extend(args.by_ref());
                break;
            }
            other => command.push(other.to_string()),
        }
    }
    let mut job = Job::new(command.join(" "))
        .timeout(Duration::from_secs(timeout))
        .memory_mib(memory);
    for (kind, v, _) in job_parts {
        job = match kind.as_str() {
            "--file" => {
                let (h, g) = split(&v);
                job.file(h, g)
            }
            "--binary" => {
                let (h, g) = split(&v);
                job.binary(h, g)
            }
            _ => match v.split_once('=') {
                Some((k, val)) => job.env(k, val),
                None => job.env(v, ""),
            },
        };
    }
    let host = match KvmHost::get() {
        Ok(h) => h,
        Err(skip) => {
            eprintln!("kvmhost_run: no nested KVM host here: {skip}");
            std::process::exit(77);
        }
    };
    match host.run(&job) {
        Ok(outcome) => {
            print!("{}", outcome.output);
            if serial {
                eprintln!("{}", outcome.serial);
            }
            if let Some(dir) = results {
                let _ = std::fs::create_dir_all(&dir);
                for (name, data) in &outcome.files {
                    let _ = std::fs::write(std::path::Path::new(&dir).join(name), data);
                }
            }
            eprintln!(
                "kvmhost_run: outer boot {:.2} s, whole run {:.2} s, exit {}",
                outcome.boot.as_secs_f64(),
                outcome.elapsed.as_secs_f64(),
                outcome.exit_code
            );
            std::process::exit(outcome.exit_code);
        }
        Err(e) => {
            eprintln!("kvmhost_run: {e}");
            std::process::exit(1);
        }
    }
}
