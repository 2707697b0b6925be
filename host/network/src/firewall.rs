//! Host forwarding and NAT for bridge networks, through `iptables`.
//!
//! Spawned once per network (create, remove, daemon start), never per
//! container. Every rule is checked with `-C` before it is added, so setup
//! is idempotent across daemon restarts.

use std::io;
use std::process::Command;

use ipnet::Ipv4Net;

use crate::error::NetworkError;

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// One iptables rule: table, chain, match/target arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `filter` or `nat`.
    pub table: &'static str,
    /// `FORWARD`, `POSTROUTING`.
    pub chain: &'static str,
    /// The rule specification.
    pub spec: Vec<String>,
}

fn rule(table: &'static str, chain: &'static str, spec: &[&str]) -> Rule {
    Rule {
        table,
        chain,
        spec: spec.iter().map(|s| s.to_string()).collect(),
    }
}

/// The rules of a bridge network.
///
/// Non-internal: MASQUERADE what leaves the subnet through another device,
/// forward everything coming from the bridge, and replies going back to it.
/// Internal: traffic only between the bridge's own ports.
pub fn bridge_rules(bridge: &str, subnet: &Ipv4Net, internal: bool) -> Vec<Rule> {
    let subnet = subnet.trunc().to_string();
    if internal {
        vec![
            rule(
                "filter",
                "FORWARD",
                &["-i", bridge, "-o", bridge, "-j", "ACCEPT"],
            ),
            rule(
                "filter",
                "FORWARD",
                &["-i", bridge, "!", "-o", bridge, "-j", "DROP"],
            ),
            rule(
                "filter",
                "FORWARD",
                &["-o", bridge, "!", "-i", bridge, "-j", "DROP"],
            ),
        ]
    } else {
        vec![
            rule(
                "nat",
                "POSTROUTING",
                &["-s", &subnet, "!", "-o", bridge, "-j", "MASQUERADE"],
            ),
            rule("filter", "FORWARD", &["-i", bridge, "-j", "ACCEPT"]),
            rule(
                "filter",
                "FORWARD",
                &[
                    "-o",
                    bridge,
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "RELATED,ESTABLISHED",
                    "-j",
                    "ACCEPT",
                ],
            ),
        ]
    }
}

fn iptables(table: &str, action: &str, chain: &str, spec: &[String]) -> io::Result<(bool, String)> {
    let mut command = Command::new("iptables");
    command.args(["-w", "-t", table, action, chain]);
    if action == "-I" {
        command.arg("1");
    }
    command.args(spec);
    let output = command.output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
    ))
}

fn describe(rule: &Rule, action: &str) -> String {
    format!(
        "-t {} {action} {} {}",
        rule.table,
        rule.chain,
        rule.spec.join(" ")
    )
}

/// Whether a rule is installed.
pub fn rule_exists(rule: &Rule) -> Result<bool, NetworkError> {
    match iptables(rule.table, "-C", rule.chain, &rule.spec) {
        Ok((exists, _)) => Ok(exists),
        Err(e) => Err(NetworkError::io("run iptables", e)),
    }
}

/// Installs the rules that are missing. Filter rules go first in their
/// chain so that a DROP policy (as dockerd sets) does not hide them.
/// Without an `iptables` binary this logs a warning and does nothing.
pub fn ensure(rules: &[Rule]) -> Result<(), NetworkError> {
    for rule in rules {
        let exists = match iptables(rule.table, "-C", rule.chain, &rule.spec) {
            Ok((exists, _)) => exists,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!("iptables not found; bridge networks get no NAT/forwarding rules");
                return Ok(());
            }
            Err(e) => return Err(NetworkError::io("run iptables", e)),
        };
        if exists {
            continue;
        }
        let action = if rule.table == "nat" { "-A" } else { "-I" };
        let (ok, stderr) = iptables(rule.table, action, rule.chain, &rule.spec)
            .map_err(|e| NetworkError::io("run iptables", e))?;
        if !ok {
            return Err(NetworkError::Iptables {
                args: describe(rule, action),
                stderr,
            });
        }
    }
    Ok(())
}

/// Deletes the rules (every copy of each). Best effort: failures are logged.
pub fn remove(rules: &[Rule]) {
    for rule in rules {
        for _ in 0..8 {
            match iptables(rule.table, "-D", rule.chain, &rule.spec) {
                Ok((true, _)) => continue,
                Ok((false, _)) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "iptables {}", describe(rule, "-D"));
                    break;
                }
            }
        }
    }
}

/// Turns on IPv4 forwarding (`net.ipv4.ip_forward=1`).
pub fn enable_ip_forward() -> Result<(), NetworkError> {
    match std::fs::read_to_string(IP_FORWARD) {
        Ok(value) if value.trim() == "1" => Ok(()),
        _ => std::fs::write(IP_FORWARD, "1")
            .map_err(|e| NetworkError::io(format!("write {IP_FORWARD}"), e)),
    }
}
