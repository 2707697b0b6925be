//! The order services start in (dependencies first) and the `depends_on` cycle check.

use std::collections::BTreeSet;

use crate::error::{ComposeError, Result};
use crate::model::Project;

/// All services, each after the services it depends on; a cycle is an error naming it.
pub fn start_order(project: &Project, label: &str) -> Result<Vec<String>> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    for name in project.services.keys() {
        visit(project, name, &mut Vec::new(), &mut done, &mut order, label)?;
    }
    Ok(order)
}

fn visit(
    project: &Project,
    name: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
    order: &mut Vec<String>,
    label: &str,
) -> Result<()> {
    if done.contains(name) {
        return Ok(());
    }
    if let Some(pos) = path.iter().position(|p| p == name) {
        let mut cycle = path[pos..].to_vec();
        cycle.push(name.to_owned());
        return Err(ComposeError::Cycle {
            file: label.to_owned(),
            cycle,
        });
    }
    let Some(service) = project.services.get(name) else {
        return Ok(());
    };
    path.push(name.to_owned());
    for dep in service.depends_on.keys() {
        visit(project, dep, path, done, order, label)?;
    }
    path.pop();
    done.insert(name.to_owned());
    order.push(name.to_owned());
    Ok(())
}

/// `wanted` and, unless `no_deps`, everything they depend on, in start order; all
/// services when `wanted` is empty.
pub fn with_dependencies(project: &Project, wanted: &[String], no_deps: bool) -> Vec<String> {
    let order = start_order(project, "").unwrap_or_default();
    if wanted.is_empty() {
        return order;
    }
    let mut keep: BTreeSet<String> = wanted.iter().cloned().collect();
    if !no_deps {
        let mut stack: Vec<String> = wanted.to_vec();
        while let Some(name) = stack.pop() {
            if let Some(service) = project.services.get(&name) {
                for dep in service.depends_on.keys() {
                    if keep.insert(dep.clone()) {
                        stack.push(dep.clone());
                    }
                }
            }
        }
    }
    order.into_iter().filter(|n| keep.contains(n)).collect()
}
