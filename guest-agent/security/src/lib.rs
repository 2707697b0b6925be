//! Seccomp filters and capability sets for containers.
