//! The syscall table of Docker's default seccomp profile, translated from
//! moby/profiles/seccomp/default.json (defaultAction SCMP_ACT_ERRNO, defaultErrnoRet 1).
//! Rules are kept in the file's order; [`super::default_profile`] filters them by capability,
//! architecture and kernel version the way Docker does.

/// What a rule does to a matching syscall.
#[derive(Clone, Copy, Debug)]
pub(super) enum RuleAction {
    Allow,
    Errno(u32),
}

/// An argument condition: (index, value, value_two, op) as in the OCI spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArgOp {
    Eq,
    Ne,
    MaskedEq,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct ArgRule {
    pub index: usize,
    pub value: u64,
    pub op: ArgOp,
}

/// One entry of the profile's "syscalls" list.
#[derive(Clone, Copy, Debug)]
pub(super) struct ProfileRule {
    pub names: &'static [&'static str],
    pub action: RuleAction,
    pub args: &'static [ArgRule],
    /// All of these capabilities must be granted for the rule to apply.
    pub includes_caps: &'static [&'static str],
    /// The rule applies only on these architectures (Go names: amd64, arm64, ...).
    pub includes_arches: &'static [&'static str],
    /// The rule applies only from this kernel version on.
    pub min_kernel: Option<(u32, u32)>,
    /// The rule is dropped when any of these capabilities is granted.
    pub excludes_caps: &'static [&'static str],
    /// The rule is dropped on these architectures.
    pub excludes_arches: &'static [&'static str],
}

const fn rule(names: &'static [&'static str]) -> ProfileRule {
    ProfileRule {
        names,
        action: RuleAction::Allow,
        args: &[],
        includes_caps: &[],
        includes_arches: &[],
        min_kernel: None,
        excludes_caps: &[],
        excludes_arches: &[],
    }
}

const fn arg_eq(index: usize, value: u64) -> ArgRule {
    ArgRule {
        index,
        value,
        op: ArgOp::Eq,
    }
}

/// CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
/// CLONE_NEWCGROUP: clone may not create namespaces without CAP_SYS_ADMIN.
const CLONE_NAMESPACE_FLAGS: u64 = 2_114_060_288;

/// Everything a container may call regardless of its capabilities.
#[rustfmt::skip]
const BASE_ALLOWLIST: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir",
    "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl",
    "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd",
    "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32",
    "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt",
    "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get",
    "ioprio_set", "io_setup", "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup",
    "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr",
    "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open",
    "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
    "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64",
    "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv",
    "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr",
    "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
    "seccomp", "select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send",
    "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32",
    "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "shmat",
    "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask",
    "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64",
    "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee",
    "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate",
    "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
    "writev",
];

/// The profile's rules, in the order of default.json.
pub(super) const RULES: &[ProfileRule] = &[
    rule(BASE_ALLOWLIST),
    ProfileRule {
        min_kernel: Some((4, 8)),
        ..rule(&["process_vm_readv", "process_vm_writev", "ptrace"])
    },
    ProfileRule {
        args: &[ArgRule {
            index: 0,
            value: 40,
            op: ArgOp::Ne,
        }], // AF_VSOCK
        ..rule(&["socket"])
    },
    ProfileRule {
        args: &[arg_eq(0, 0)],
        ..rule(&["personality"])
    },
    ProfileRule {
        args: &[arg_eq(0, 8)],
        ..rule(&["personality"])
    },
    ProfileRule {
        args: &[arg_eq(0, 131_072)],
        ..rule(&["personality"])
    },
    ProfileRule {
        args: &[arg_eq(0, 131_080)],
        ..rule(&["personality"])
    },
    ProfileRule {
        args: &[arg_eq(0, 4_294_967_295)],
        ..rule(&["personality"])
    },
    ProfileRule {
        includes_arches: &["ppc64le"],
        ..rule(&["sync_file_range2", "swapcontext"])
    },
    ProfileRule {
        includes_arches: &["arm", "arm64"],
        ..rule(&[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ])
    },
    ProfileRule {
        includes_arches: &["amd64", "x32"],
        ..rule(&["arch_prctl"])
    },
    ProfileRule {
        includes_arches: &["amd64", "x32", "x86"],
        ..rule(&["modify_ldt"])
    },
    ProfileRule {
        includes_arches: &["s390", "s390x"],
        ..rule(&[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ])
    },
    ProfileRule {
        includes_arches: &["riscv64"],
        ..rule(&["riscv_flush_icache"])
    },
    ProfileRule {
        includes_caps: &["CAP_DAC_READ_SEARCH"],
        ..rule(&["open_by_handle_at"])
    },
    ProfileRule {
        includes_caps: &["CAP_SYS_ADMIN"],
        ..rule(&[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ])
    },
    ProfileRule {
        args: &[ArgRule {
            index: 0,
            value: CLONE_NAMESPACE_FLAGS,
            op: ArgOp::MaskedEq,
        }],
        excludes_caps: &["CAP_SYS_ADMIN"],
        excludes_arches: &["s390", "s390x"],
        ..rule(&["clone"])
    },
    ProfileRule {
        // s390 parameter ordering for clone is different.
        args: &[ArgRule {
            index: 1,
            value: CLONE_NAMESPACE_FLAGS,
            op: ArgOp::MaskedEq,
        }],
        includes_arches: &["s390", "s390x"],
        excludes_caps: &["CAP_SYS_ADMIN"],
        ..rule(&["clone"])
    },
    ProfileRule {
        // ENOSYS, so that libc falls back to clone(2), whose flags the rule above can check.
        action: RuleAction::Errno(38),
        excludes_caps: &["CAP_SYS_ADMIN"],
        ..rule(&["clone3"])
    },
    ProfileRule {
        includes_caps: &["CAP_SYS_BOOT"],
        ..rule(&["reboot"])
    },
    ProfileRule {
        includes_caps: &["CAP_SYS_CHROOT"],
        ..rule(&["chroot"])
    },
    ProfileRule {
        includes_caps: &["CAP_SYS_MODULE"],
        ..rule(&["delete_module", "init_module", "finit_module"])
    },
    ProfileRule {
        includes_caps: &["CAP_SYS_PACCT"],
        ..rule(&["acct"])
    },
    ProfileRule {
        includes_caps: &["CAP_SYS_PTRACE"],
        ..rule(&[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ])
    },
    ProfileRule {
        includes_caps: &["CAP_SYS_RAWIO"],
        ..rule(&["iopl", "ioperm"])
    },
    ProfileRule {
        includes_caps: &["CAP_SYS_TIME"],
        ..rule(&["settimeofday", "stime", "clock_settime", "clock_settime64"])
    },
    ProfileRule {
        includes_caps: &["CAP_SYS_TTY_CONFIG"],
        ..rule(&["vhangup"])
    },
    ProfileRule {
        includes_caps: &["CAP_SYS_NICE"],
        ..rule(&[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ])
    },
    ProfileRule {
        includes_caps: &["CAP_SYSLOG"],
        ..rule(&["syslog"])
    },
    ProfileRule {
        includes_caps: &["CAP_BPF"],
        ..rule(&["bpf"])
    },
    ProfileRule {
        includes_caps: &["CAP_PERFMON"],
        ..rule(&["perf_event_open"])
    },
];
