//! Applying capability sets in a forked child and reading them back from the kernel.

mod common;

use common::in_child;
use vmrun_security::capabilities::{self, CapabilitySets, DOCKER_DEFAULT};

const CAP_CHOWN: libc::c_ulong = 0;
const CAP_NET_BIND_SERVICE: libc::c_ulong = 10;
const CAP_SYS_ADMIN: libc::c_ulong = 21;

/// (effective, permitted, inheritable) of the calling thread, as 64-bit masks.
fn read_sets() -> (u64, u64, u64) {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: valid version-3 header and two data structs, alive across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return (0, 0, 0);
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    (
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    )
}

fn in_bounding(cap: libc::c_ulong) -> bool {
    // SAFETY: prctl(PR_CAPBSET_READ, cap) takes no pointers.
    unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) == 1 }
}

fn in_ambient(cap: libc::c_ulong) -> bool {
    // SAFETY: prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap) takes no pointers.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong,
            cap,
            0,
            0,
        ) == 1
    }
}

fn skip_unless_root() -> bool {
    if common::is_root() {
        return false;
    }
    vmrun_test_skip::report(format_args!(
        "needs root (full capability sets to drop from)"
    ));
    true
}

#[test]
fn docker_default_drops_sys_admin() {
    if skip_unless_root() {
        return;
    }
    let caps =
        CapabilitySets::from_oci(&capabilities::docker_capabilities(DOCKER_DEFAULT).unwrap())
            .unwrap();
    assert!(
        in_bounding(CAP_SYS_ADMIN),
        "the test process should start with CAP_SYS_ADMIN"
    );
    let code = in_child(|| {
        if caps.apply().is_err() {
            return 1;
        }
        if in_bounding(CAP_SYS_ADMIN) {
            return 2;
        }
        let (effective, permitted, inheritable) = read_sets();
        if effective & (1 << CAP_SYS_ADMIN) != 0 || permitted & (1 << CAP_SYS_ADMIN) != 0 {
            return 3;
        }
        if effective & (1 << CAP_CHOWN) == 0 || !in_bounding(CAP_CHOWN) {
            return 4;
        }
        if effective.count_ones() != 14 || inheritable != 0 {
            return 5;
        }
        // And the kernel enforces it: a new UTS namespace needs CAP_SYS_ADMIN.
        // SAFETY: unshare with integer flags; on success it only affects this child.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWUTS) };
        if rc == 0 || common::errno() != libc::EPERM {
            return 6;
        }
        0
    });
    assert_eq!(code, 0, "check {code} failed in the child");
}

#[test]
fn ambient_and_inheritable_are_applied() {
    if skip_unless_root() {
        return;
    }
    let mut spec =
        capabilities::docker_capabilities(&["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]).unwrap();
    let nbs = capabilities::parse_capabilities(&["CAP_NET_BIND_SERVICE"]).unwrap();
    spec.set_inheritable(Some(nbs.clone()))
        .set_ambient(Some(nbs));
    let caps = CapabilitySets::from_oci(&spec).unwrap();
    let code = in_child(|| {
        if caps.apply().is_err() {
            return 1;
        }
        if !in_ambient(CAP_NET_BIND_SERVICE) || in_ambient(CAP_CHOWN) {
            return 2;
        }
        let (effective, _, inheritable) = read_sets();
        if inheritable != 1 << CAP_NET_BIND_SERVICE || effective.count_ones() != 2 {
            return 3;
        }
        0
    });
    assert_eq!(code, 0, "check {code} failed in the child");
}

#[test]
fn keep_caps_across_setresuid() {
    if skip_unless_root() {
        return;
    }
    let caps =
        CapabilitySets::from_oci(&capabilities::docker_capabilities(DOCKER_DEFAULT).unwrap())
            .unwrap();
    let code = in_child(|| {
        if capabilities::set_keep_caps(true).is_err() {
            return 1;
        }
        // SAFETY: setresuid with integer ids.
        if unsafe { libc::setresuid(1000, 1000, 1000) } != 0 {
            return 2;
        }
        if caps.apply().is_err() {
            return 3;
        }
        let (effective, permitted, _) = read_sets();
        if effective & (1 << CAP_CHOWN) == 0 || permitted & (1 << CAP_SYS_ADMIN) != 0 {
            return 4;
        }
        if in_bounding(CAP_SYS_ADMIN) {
            return 5;
        }
        0
    });
    assert_eq!(code, 0, "check {code} failed in the child");
}
