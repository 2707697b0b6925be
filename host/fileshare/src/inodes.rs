//! The share's inode table: FUSE node ids ↔ paths relative to the share root.
//!
//! The root is node 1 with the empty path. Every other node is created by a lookup (or an
//! entry reply: create, mkdir, readdirplus...) and counts the kernel's references to it; a
//! FORGET that brings the count to zero drops it. Node ids are never reused, so the
//! generation number can stay 0. A node whose path was removed or overwritten is *detached*:
//! it keeps its id until forgotten, but no path leads to it any more.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The root's node id (FUSE_ROOT_ID).
pub(crate) const ROOT_INO: u64 = 1;

#[derive(Debug)]
struct Node {
    /// Relative to the share root; `None` once detached (unlinked, or replaced by a rename).
    path: Option<PathBuf>,
    /// References the kernel holds (lookups not yet forgotten).
    lookups: u64,
}

/// Node ids ↔ relative paths. Not synchronised: the file system keeps it behind a mutex.
#[derive(Debug)]
pub(crate) struct InodeTable {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<PathBuf, u64>,
    next_ino: u64,
}

impl Default for InodeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl InodeTable {
    /// A table holding only the root.
    pub(crate) fn new() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT_INO,
            Node {
                path: Some(PathBuf::new()),
                lookups: 1,
            },
        );
        let mut by_path = HashMap::new();
        by_path.insert(PathBuf::new(), ROOT_INO);
        Self {
            nodes,
            by_path,
            next_ino: ROOT_INO + 1,
        }
    }

    /// The path of node `ino`, if it is known and still attached.
    pub(crate) fn path(&self, ino: u64) -> Option<&Path> {
        self.nodes.get(&ino)?.path.as_deref()
    }

    /// The node at `path`, if one is known.
    pub(crate) fn ino_of(&self, path: &Path) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    /// Counts one kernel reference to the node at `path` (creating the node if needed) and
    /// returns its id.
    pub(crate) fn lookup(&mut self, path: &Path) -> u64 {
        let ino = self.ino_or_insert(path);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_add(1);
        }
        ino
    }

    /// The node at `path`, created with no kernel reference if new (plain READDIR reports
    /// ids without taking references; such nodes stay until a later lookup is forgotten).
    pub(crate) fn ino_or_insert(&mut self, path: &Path) -> u64 {
        if let Some(ino) = self.by_path.get(path) {
            return *ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                path: Some(path.to_path_buf()),
                lookups: 0,
            },
        );
        self.by_path.insert(path.to_path_buf(), ino);
        ino
    }

    /// Drops `count` kernel references to `ino`; the node goes when none is left. The root
    /// is never dropped.
    pub(crate) fn forget(&mut self, ino: u64, count: u64) {
        if ino == ROOT_INO {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(count);
        if node.lookups > 0 {
            return;
        }
        if let Some(node) = self.nodes.remove(&ino) {
            if let Some(path) = node.path {
                if self.by_path.get(&path) == Some(&ino) {
                    self.by_path.remove(&path);
                }
            }
        }
    }

    /// Detaches the node at `path` and every node below it: the path is gone (unlinked,
    /// removed, or replaced by a rename).
    pub(crate) fn detach(&mut self, path: &Path) {
        for ino in self.take_subtree(path).into_iter().map(|(ino, _)| ino) {
            let Some(node) = self.nodes.get_mut(&ino) else {
                continue;
            };
            node.path = None;
            if node.lookups == 0 {
                self.nodes.remove(&ino);
            }
        }
    }

    /// `from` (and everything below it) is now at `to`; whatever was at `to` is detached.
    pub(crate) fn rename(&mut self, from: &Path, to: &Path) {
        if from == to {
            return;
        }
        let moved = self.take_subtree(from);
        self.detach(to);
        self.reattach(moved, from, to);
    }

    /// `a` and `b` (with what is below them) swapped places (RENAME_EXCHANGE).
    pub(crate) fn exchange(&mut self, a: &Path, b: &Path) {
        if a == b {
            return;
        }
        let under_a = self.take_subtree(a);
        let under_b = self.take_subtree(b);
        self.reattach(under_a, a, b);
        self.reattach(under_b, b, a);
    }

    /// Removes the path index entries of `root` and everything below it, returning the
    /// nodes with their paths (the nodes keep their old paths until reattached or detached).
    fn take_subtree(&mut self, root: &Path) -> Vec<(u64, PathBuf)> {
        let paths: Vec<PathBuf> = if root.as_os_str().is_empty() {
            // The share root itself never moves; nothing takes it.
            Vec::new()
        } else {
            self.by_path
                .keys()
                .filter(|p| p.starts_with(root))
                .cloned()
                .collect()
        };
        paths
            .into_iter()
            .filter_map(|p| self.by_path.remove(&p).map(|ino| (ino, p)))
            .collect()
    }

    /// Puts nodes taken from under `from` back under `to`.
    fn reattach(&mut self, nodes: Vec<(u64, PathBuf)>, from: &Path, to: &Path) {
        for (ino, old) in nodes {
            let Ok(rest) = old.strip_prefix(from) else {
                continue;
            };
            let new = if rest.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(rest)
            };
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.path = Some(new.clone());
                self.by_path.insert(new, ino);
            }
        }
    }

    /// How many nodes the table holds (the root included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn root_is_one_and_lookups_are_stable() {
        let mut t = InodeTable::new();
        assert_eq!(t.path(ROOT_INO), Some(p("")));
        let a = t.lookup(p("a"));
        assert_ne!(a, ROOT_INO);
        assert_eq!(t.lookup(p("a")), a);
        assert_eq!(t.path(a), Some(p("a")));
        assert_eq!(t.ino_of(p("a")), Some(a));
    }

    #[test]
    fn forget_drops_a_node_when_no_reference_is_left() {
        let mut t = InodeTable::new();
        let a = t.lookup(p("a"));
        t.lookup(p("a"));
        t.forget(a, 1);
        assert_eq!(t.path(a), Some(p("a")));
        t.forget(a, 1);
        assert_eq!(t.path(a), None);
        assert_eq!(t.ino_of(p("a")), None);
        let again = t.lookup(p("a"));
        assert_ne!(again, a, "ids are not reused");
        t.forget(ROOT_INO, 100);
        assert_eq!(t.path(ROOT_INO), Some(p("")));
    }

    #[test]
    fn rename_moves_descendants_and_detaches_the_target() {
        let mut t = InodeTable::new();
        let d = t.lookup(p("d"));
        let f = t.lookup(p("d/sub/f"));
        let dd = t.lookup(p("dd"));
        let victim = t.lookup(p("e"));
        t.rename(p("d"), p("e"));
        assert_eq!(t.path(d), Some(p("e")));
        assert_eq!(t.path(f), Some(p("e/sub/f")));
        assert_eq!(
            t.path(dd),
            Some(p("dd")),
            "a sibling sharing a prefix stays"
        );
        assert_eq!(t.path(victim), None);
        assert_eq!(t.ino_of(p("e")), Some(d));
        assert_eq!(t.ino_of(p("d/sub/f")), None);
        t.forget(victim, 1);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn exchange_swaps_subtrees() {
        let mut t = InodeTable::new();
        let a = t.lookup(p("a"));
        let a1 = t.lookup(p("a/1"));
        let b = t.lookup(p("b"));
        t.exchange(p("a"), p("b"));
        assert_eq!(t.path(a), Some(p("b")));
        assert_eq!(t.path(a1), Some(p("b/1")));
        assert_eq!(t.path(b), Some(p("a")));
        assert_eq!(t.ino_of(p("a")), Some(b));
    }

    #[test]
    fn detach_keeps_referenced_nodes_until_forgotten() {
        let mut t = InodeTable::new();
        let a = t.lookup(p("a"));
        let listed = t.ino_or_insert(p("a/x"));
        t.detach(p("a"));
        assert_eq!(t.path(a), None);
        assert_eq!(t.path(listed), None);
        assert_eq!(t.len(), 2, "the unreferenced node went at once");
        t.forget(a, 1);
        assert_eq!(t.len(), 1);
    }
}
