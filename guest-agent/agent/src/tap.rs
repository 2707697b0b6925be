//! A container's `eth0` in a VM: a TAP device made in the container's network namespace
//! and addressed with ioctls (the same ones `ifconfig` and `route` use), so the agent
//! needs no netlink route code for the four settings it makes. Its frames are carried to
//! the host by [`crate::guest_net`].

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use vmrun_agent_protocol::network::GuestNetwork;

/// The device's name in the container.
pub const DEVICE: &str = "eth0";

/// glibc's `struct rtentry` (`<net/route.h>`), which the `libc` crate defines only for
/// musl and uClibc; the layout is the kernel's.
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

/// Makes `eth0` in the calling thread's network namespace, set up as `net` says and up,
/// with a default route through its gateway; returns the TAP's file (non-blocking). The
/// device lasts as long as the file is open.
pub fn create(net: &GuestNetwork) -> io::Result<OwnedFd> {
    let tap = open_tap()?;
    let sock_fd = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let sock = sock_fd.as_raw_fd();

    let mut req = ifreq();
    req.ifr_ifru.ifru_hwaddr = libc::sockaddr {
        sa_family: libc::ARPHRD_ETHER,
        sa_data: [0; 14],
    };
    // SAFETY: `ifru_hwaddr` was written just above, so reading it back is defined.
    let hw = unsafe { &mut req.ifr_ifru.ifru_hwaddr };
    for (dst, src) in hw.sa_data.iter_mut().zip(net.mac) {
        *dst = src as libc::c_char;
    }
    ioctl(
        sock,
        libc::SIOCSIFHWADDR,
        &mut req,
        "setting eth0's MAC address",
    )?;

    let mut req = ifreq();
    req.ifr_ifru.ifru_mtu = i32::try_from(net.mtu).unwrap_or(1500);
    ioctl(sock, libc::SIOCSIFMTU, &mut req, "setting eth0's MTU")?;

    let mut req = ifreq();
    req.ifr_ifru.ifru_addr = sockaddr_v4(net.address);
    ioctl(sock, libc::SIOCSIFADDR, &mut req, "setting eth0's address")?;

    let mask = u32::MAX
        .checked_shl(32 - u32::from(net.prefix_len.min(32)))
        .unwrap_or(0);
    let mut req = ifreq();
    req.ifr_ifru.ifru_netmask = sockaddr_v4(Ipv4Addr::from(mask));
    ioctl(
        sock,
        libc::SIOCSIFNETMASK,
        &mut req,
        "setting eth0's netmask",
    )?;

    let mut req = ifreq();
    ioctl(sock, libc::SIOCGIFFLAGS, &mut req, "reading eth0's flags")?;
    // SAFETY: SIOCGIFFLAGS filled `ifru_flags` just above.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    ioctl(sock, libc::SIOCSIFFLAGS, &mut req, "bringing eth0 up")?;

    let mut route = RtEntry {
        rt_pad1: 0,
        rt_dst: sockaddr_v4(Ipv4Addr::UNSPECIFIED),
        rt_gateway: sockaddr_v4(net.gateway),
        rt_genmask: sockaddr_v4(Ipv4Addr::UNSPECIFIED),
        rt_flags: libc::RTF_UP | libc::RTF_GATEWAY,
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: std::ptr::null_mut(),
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    // SAFETY: SIOCADDRT reads a `struct rtentry`, which `route` is (same layout), valid
    // for the call; its device pointer is null (the kernel picks eth0 by the gateway).
    if unsafe { libc::ioctl(sock, libc::SIOCADDRT, &mut route) } < 0 {
        return Err(failed("adding the default route"));
    }
    drop(sock_fd);
    Ok(tap)
}

/// `/dev/net/tun` attached to a new TAP device named [`DEVICE`], without packet info.
fn open_tap() -> io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        "/dev/net/tun",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("opening /dev/net/tun: {e}"),
        )
    })?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let tap = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = ifreq();
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads the name and flags from `req`, a valid `ifreq`, and may
    // write the chosen name back into it; `tap` is an open /dev/net/tun descriptor.
    if unsafe { libc::ioctl(tap.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        return Err(failed("making the TAP device"));
    }
    Ok(tap)
}

/// An `ifreq` naming [`DEVICE`], all else zero.
fn ifreq() -> libc::ifreq {
    // SAFETY: `ifreq` is a plain C struct for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(DEVICE.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    req
}

/// One interface ioctl on socket `sock`.
fn ioctl(
    sock: libc::c_int,
    request: libc::c_ulong,
    req: &mut libc::ifreq,
    what: &str,
) -> io::Result<()> {
    // SAFETY: every request passed here (SIOC[GS]IF*) reads and/or writes one `ifreq`,
    // which `req` is, valid and writable for the call; `sock` is an open socket.
    if unsafe { libc::ioctl(sock, request as _, req as *mut libc::ifreq) } < 0 {
        return Err(failed(what));
    }
    Ok(())
}

/// `addr` as a generic `sockaddr` (an `AF_INET` `sockaddr_in` in its bytes).
fn sockaddr_v4(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sockaddr_in` and `sockaddr` are both 16-byte plain C structs; reading the
    // one's bytes as the other is how the sockets API passes addresses.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn failed(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
