//! OCI container runtime library: namespaces, rootfs, cgroups, seccomp, capabilities.
