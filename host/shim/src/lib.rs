//! Per-container monitor process: holds the container's stdio, writes its log, records its exit.
