//! Seccomp filters and capability sets for containers.
//!
//! Both halves follow the same split: everything that allocates or can be slow happens in the
//! parent before fork ([`seccomp::compile`], building capability sets), and the child only
//! makes system calls ([`seccomp::apply`], [`capabilities::apply`]).

pub mod capabilities;
pub mod seccomp;
