//! Cgroup managers for cgroup v1 and v2.
