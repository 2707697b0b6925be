//! Boots the kernel-config kernel with the echo initramfs through each backend: host →
//! guest echo over hybrid vsock, guest → host connection, the stop reason.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use vmrun_vm::{VmBackend, VmExit};
use vmrun_vmtest::{ECHO_PORT, GUEST_CONNECT_PORT, GUEST_HELLO};

/// Boot, echo, guest hello, reboot → [`VmExit::Reset`]; returns boot-to-echo time.
fn boot_echo_and_reset(backend: &dyn VmBackend, guest: &common::Guest) -> Duration {
    let spec = guest.spec();
    // The guest connects to CID 2 port 1025: the device forwards to `<vsock_path>_1025`.
    let mut host_listen = spec.vsock_path.clone().into_os_string();
    host_listen.push(format!("_{GUEST_CONNECT_PORT}"));
    let listener = UnixListener::bind(&host_listen).unwrap();

    let started = Instant::now();
    let vm = backend.launch(&spec).unwrap();
    if let Err(why) = guest.wait_listening(Duration::from_secs(30)) {
        panic!("{why}");
    }
    let mut stream = match vm.connect(ECHO_PORT, Duration::from_secs(30)) {
        Ok(s) => s,
        Err(e) => panic!("{e}; serial:\n{}", guest.serial()),
    };
    stream.write_all(b"hello from the host").unwrap();
    let mut echo = [0u8; 19];
    stream.read_exact(&mut echo).unwrap();
    let boot_to_echo = started.elapsed();
    assert_eq!(&echo, b"hello from the host");
    drop(stream);

    listener.set_nonblocking(false).unwrap();
    let (mut from_guest, _) = listener.accept().unwrap();
    from_guest
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut hello = vec![0u8; GUEST_HELLO.len()];
    from_guest.read_exact(&mut hello).unwrap();
    assert_eq!(hello, GUEST_HELLO);
    drop(from_guest);

    let why = vm.wait().unwrap();
    assert_eq!(why, VmExit::Reset, "serial:\n{}", guest.serial());
    assert_eq!(vm.try_wait().unwrap(), Some(VmExit::Reset));
    let (sock, pid) = (spec.vsock_path.clone(), vm.pid());
    drop(vm);
    assert!(!sock.exists(), "the vsock socket is removed on drop");
    assert!(common::wait_gone(&sock, &[pid], Duration::from_secs(5)).is_empty());
    boot_to_echo
}

#[test]
fn qemu_boots_the_guest_kernel_and_round_trips_over_vsock() {
    let (backend, guest) = match common::qemu_backend().and_then(|b| Ok((b, common::guest()?))) {
        Ok(x) => x,
        Err(why) => return vmrun_test_skip::report(format_args!("{why}")),
    };
    let took = boot_echo_and_reset(&backend, &guest);
    eprintln!("qemu ({:?}): boot to vsock echo {took:?}", backend.accel());
}

// Our VMM boots the same kernel in `nested_vmm.rs` (real KVM: hardware, or the nested KVM
// host), with more checks than this echo.
