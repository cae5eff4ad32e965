//! The only unsafe code in ferrolb: an `AF_PACKET` socket and `SO_ATTACH_FILTER` on it.
//!
//! Everything else (binding to an interface and ethertype, sending, receiving) goes through
//! pnet, which takes the descriptor made here (`Config::socket_fd`).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)`: a raw link-layer socket that receives
/// nothing until it is bound (protocol 0), so no frame can reach it before its filter is on.
pub(crate) fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain system call with constant arguments; no pointers involved.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2), is open, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attaches a classic BPF program (`SO_ATTACH_FILTER`): the kernel then copies to this socket
/// only the frames the program accepts.
pub(crate) fn attach_filter(fd: BorrowedFd<'_>, program: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
    let prog = libc::sock_fprog {
        len,
        // The kernel only reads the program (it copies it in); the `*mut` is the C type's.
        filter: program.as_ptr().cast_mut(),
    };
    let size = libc::socklen_t::try_from(std::mem::size_of::<libc::sock_fprog>())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "sock_fprog size"))?;
    // SAFETY: `prog` is a valid `sock_fprog` whose `filter` points at `len` initialised
    // `sock_filter`s borrowed for the duration of the call; `size` is its exact size; the
    // kernel copies the program and keeps no pointer into our memory.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::from_ref(&prog).cast::<libc::c_void>(),
            size,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the receive buffer to `bytes`: first with `SO_RCVBUFFORCE` (needs CAP_NET_ADMIN, which
/// the daemon has, and ignores `net.core.rmem_max`), else with `SO_RCVBUF` (capped at
/// `rmem_max`). Returns the size the kernel reports afterwards (it doubles the request for its
/// bookkeeping).
pub(crate) fn set_receive_buffer(fd: BorrowedFd<'_>, bytes: u32) -> io::Result<u32> {
    let value = libc::c_int::try_from(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "receive buffer too large"))?;
    let size = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "c_int size"))?;
    let set = |option: libc::c_int| {
        // SAFETY: `value` is a live c_int and `size` its exact size; the kernel copies it.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                std::ptr::from_ref(&value).cast::<libc::c_void>(),
                size,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) < 0 && set(libc::SO_RCVBUF) < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut got: libc::c_int = 0;
    let mut len = size;
    // SAFETY: `got` and `len` are live, writable, and `len` holds `got`'s size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_mut(&mut got).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u32::try_from(got).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// `ret #0`: accepts nothing. Attaching must work on a fresh socket (needs CAP_NET_RAW,
    /// which the test runner has as root; without it socket(2) fails and so does the test).
    #[test]
    fn a_program_attaches_to_a_packet_socket() {
        let fd = packet_socket().expect("AF_PACKET socket (run as root)");
        let reject_all = [libc::sock_filter {
            code: 0x06, // BPF_RET | BPF_K
            jt: 0,
            jf: 0,
            k: 0,
        }];
        attach_filter(fd.as_fd(), &reject_all).expect("SO_ATTACH_FILTER");
    }

    #[test]
    fn the_receive_buffer_grows_past_rmem_max_as_root() {
        let fd = packet_socket().expect("AF_PACKET socket (run as root)");
        let got = set_receive_buffer(fd.as_fd(), RECEIVE_BUFFER_FOR_TEST).expect("SO_RCVBUF");
        // The kernel reports twice the request; as root SO_RCVBUFFORCE bypasses rmem_max.
        assert!(got >= RECEIVE_BUFFER_FOR_TEST, "got {got}");
    }

    const RECEIVE_BUFFER_FOR_TEST: u32 = 2 << 20;

    #[test]
    fn an_invalid_program_is_refused() {
        let fd = packet_socket().expect("AF_PACKET socket (run as root)");
        // A program must end in a return; a lone load is rejected by the kernel's checker.
        let invalid = [libc::sock_filter {
            code: 0x20, // BPF_LD | BPF_W | BPF_ABS
            jt: 0,
            jf: 0,
            k: 0,
        }];
        assert!(attach_filter(fd.as_fd(), &invalid).is_err());
    }
}
