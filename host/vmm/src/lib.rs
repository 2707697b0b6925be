//! The vmrun microVM monitor on KVM.
