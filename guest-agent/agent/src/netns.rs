//! Network namespaces of containers: running code inside one, and bringing its loopback
//! up (a fresh namespace has `lo` down, and nothing else in the guest configures it).
//!
//! `setns` changes only the calling thread's namespace, and the agent's runtime thread must
//! stay in the guest's, so the work runs on a short-lived thread of its own. A socket made
//! there keeps its namespace wherever it is used afterwards.

use std::io;
use std::os::fd::AsRawFd;

/// Runs `work` on a new thread that has joined process `pid`'s network namespace.
pub async fn in_netns<T, F>(pid: i32, work: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            let done = join_netns(pid).and_then(|()| work());
            let _ = tx.send(done);
        })?;
    rx.await
        .unwrap_or_else(|_| Err(io::Error::other("the namespace thread ended early")))
}

/// Moves the calling thread into process `pid`'s network namespace.
pub fn join_netns(pid: i32) -> io::Result<()> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// `ip link set lo up` through `SIOCSIFFLAGS`, in the calling thread's namespace.
pub fn bring_up_loopback() -> io::Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let failed = |what: &str| {
        let e = io::Error::last_os_error();
        io::Error::new(e.kind(), format!("{what} lo: {e}"))
    };
    // SAFETY: `ifreq` is a plain C struct for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name from and writes the flags into `req`, which is a
    // valid, writable `ifreq` for the duration of the call; the fd is an open socket.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(failed("SIOCGIFFLAGS"));
    }
    // SAFETY: the kernel filled `ifru_flags` of the union just above.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: as above: `req` is a valid `ifreq` naming `lo` with the new flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(failed("SIOCSIFFLAGS"));
    }
    Ok(())
}
