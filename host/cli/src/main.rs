//! The vmrun command-line interface.

fn main() {}
