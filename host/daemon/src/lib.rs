//! The vmrun daemon: Docker Engine API, container state, backends.
