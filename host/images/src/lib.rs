//! Content-addressed image store: OCI layouts, docker-archives, unpacked layers.
