//! End-to-end tests through the vmrun CLI, the Docker API and the docker CLI.
