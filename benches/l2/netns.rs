//! Threads inside network namespaces, and the raw sockets the client side measures with.
//!
//! A network namespace is per thread: `setns` moves only the calling thread, threads it spawns
//! afterwards start in the same namespace, and a socket stays in the namespace it was created
//! in whichever thread uses it later. So the benchmark's main thread moves into the API
//! namespace before it builds the simulator's runtime, and every client-side socket is created
//! by a thread that first moved into the client namespace.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Moves the calling thread into the network namespace `/run/netns/NAME` (made by `ip netns`).
pub fn enter(name: &str) -> io::Result<()> {
    let ns = File::open(format!("/run/netns/{name}"))?;
    setns(&ns)
}

fn setns(ns: &File) -> io::Result<()> {
    // SAFETY: `ns` is an open namespace file for the whole call; CLONE_NEWNET only switches the
    // calling thread's network namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread inside another network namespace until dropped (then back where it was).
pub struct Inside {
    original: File,
}

impl Inside {
    /// Moves the calling thread into `name`, remembering where it was.
    pub fn enter(name: &str) -> io::Result<Inside> {
        let original = File::open("/proc/thread-self/ns/net")?;
        enter(name)?;
        Ok(Inside { original })
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.original) {
            eprintln!("cannot return to the original network namespace: {e}");
        }
    }
}

/// Runs `f` on a new thread inside the namespace `name`.
pub fn spawn_in<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> JoinHandle<io::Result<T>> {
    let name = name.to_string();
    std::thread::spawn(move || {
        enter(&name)?;
        f()
    })
}

/// Runs `f` inside the namespace `name` and waits for it.
pub fn run_in<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    spawn_in(name, f)
        .join()
        .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Waits until `fd` is readable or `timeout` passes; `false` on timeout.
fn readable(fd: &OwnedFd, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    loop {
        // SAFETY: one valid pollfd, for the duration of the call.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one datagram without blocking; `None` when there is none.
fn recv_now(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is valid for `buf.len()` bytes for the duration of the call.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n >= 0 {
        return Ok(Some(n as usize));
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
        _ => Err(e),
    }
}

/// Receives one datagram, waiting until `deadline`; `None` when it passed.
fn recv_until(fd: &OwnedFd, buf: &mut [u8], deadline: Instant) -> io::Result<Option<usize>> {
    loop {
        if let Some(n) = recv_now(fd, buf)? {
            return Ok(Some(n));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !readable(fd, left)? {
            return Ok(None);
        }
    }
}

/// An `AF_PACKET` socket bound to one ethertype on one interface of the namespace it was
/// opened in: the client's raw ARP/NDP endpoint and the capture.
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens it on `ifname` for `ethertype` frames, with a receive buffer of `rcvbuf` bytes
    /// (the kernel doubles it).
    pub fn open(ifname: &str, ethertype: u16, rcvbuf: usize) -> io::Result<PacketSocket> {
        let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
        // SAFETY: a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let proto = ethertype.to_be();
        // SAFETY: plain socket creation; the fd is owned right below.
        let raw = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::c_int::from(proto),
            )
        })?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `sll` is a valid sockaddr_ll of the given length.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        let size = rcvbuf.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: an int option of the right size.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
        Ok(PacketSocket { fd })
    }

    /// Sends one whole Ethernet frame out of the bound interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is valid for its length for the duration of the call.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one frame, waiting until `deadline`; `None` when it passed first.
    pub fn recv_until(&self, buf: &mut [u8], deadline: Instant) -> io::Result<Option<usize>> {
        recv_until(&self.fd, buf, deadline)
    }

    /// Asks the kernel to timestamp every received frame (`SO_TIMESTAMPNS`, read by
    /// [`PacketSocket::recv_stamped`]).
    pub fn enable_timestamps(&self) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: an int option of the right size.
        check(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// Receives one frame, waiting until `deadline`, with the time the kernel received it
    /// (converted to the monotonic clock; the receive time itself when there is no stamp).
    pub fn recv_stamped(
        &self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> io::Result<Option<(usize, Instant)>> {
        loop {
            if let Some(r) = self.recvmsg_now(buf)? {
                return Ok(Some(r));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !readable(&self.fd, left)? {
                return Ok(None);
            }
        }
    }

    fn recvmsg_now(&self, buf: &mut [u8]) -> io::Result<Option<(usize, Instant)>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // Room for one SCM_TIMESTAMPNS control message, u64-aligned.
        let mut control = [0u64; 8];
        // SAFETY: msghdr is plain data; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: `msg` points at `iov` (into `buf`) and `control`, all alive for the call.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        let now = Instant::now();
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let mut at = now;
        // SAFETY: the CMSG_* macros walk the control buffer the kernel filled in, within
        // `msg_controllen`; a SCM_TIMESTAMPNS payload is one timespec.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    let stamp =
                        std::time::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
                    // How long ago the kernel received it, on the wall clock, taken off the
                    // monotonic time of the return.
                    if let Ok(ago) = std::time::SystemTime::now().duration_since(stamp) {
                        at = now.checked_sub(ago).unwrap_or(now);
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok(Some((n as usize, at)))
    }

    /// Receives one frame if one is queued.
    pub fn recv_now(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        recv_now(&self.fd, buf)
    }
}

/// A rtnetlink socket subscribed to neighbour-table changes of its namespace.
pub struct NeighSocket {
    fd: OwnedFd,
}

impl NeighSocket {
    /// Opens it (in the calling thread's namespace).
    pub fn open() -> io::Result<NeighSocket> {
        // SAFETY: plain socket creation; the fd is owned right below.
        let raw = check(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        })?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut snl: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        snl.nl_family = libc::AF_NETLINK as u16;
        snl.nl_groups = libc::RTMGRP_NEIGH as u32;
        // SAFETY: `snl` is a valid sockaddr_nl of the given length.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&snl as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        Ok(NeighSocket { fd })
    }

    /// Receives one netlink datagram (possibly several messages), waiting until `deadline`.
    pub fn recv_until(&self, buf: &mut [u8], deadline: Instant) -> io::Result<Option<usize>> {
        recv_until(&self.fd, buf, deadline)
    }
}

/// utime + stime of a process (all its threads), from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / hz as f64))
}
