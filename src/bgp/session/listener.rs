//! The passive side: one listening socket (`[::]:179`, dual-stack) handing each accepted
//! connection to the session of the peer it comes from. MD5 keys are set per peer on the
//! listening socket; accepted sockets inherit them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::socket::{self, SocketError};
use super::Acceptor;

type Peers = Arc<Mutex<HashMap<IpAddr, Acceptor>>>;

/// The listener of every passive (and active: collisions are resolved by the state
/// machine) session of this node.
#[derive(Debug)]
pub struct Listener {
    socket: Arc<TcpListener>,
    v6: bool,
    peers: Peers,
    task: JoinHandle<()>,
}

impl Listener {
    /// Listens on `addr` (`[::]:179` takes IPv4 peers too). Must be called inside a tokio
    /// runtime. Connections from addresses without a session are closed at once.
    pub fn bind(addr: SocketAddr) -> Result<Listener, SocketError> {
        let socket = Arc::new(socket::listen(addr)?);
        let peers: Peers = Arc::default();
        let task = tokio::spawn(accept_loop(Arc::clone(&socket), Arc::clone(&peers)));
        Ok(Listener {
            socket,
            v6: addr.is_ipv6(),
            peers,
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, SocketError> {
        self.socket.local_addr().map_err(|source| SocketError::Io {
            what: "reading the listener's address",
            source,
        })
    }

    /// Hands connections from `peer` to `session`, signed with `password` if given.
    pub fn add_peer(
        &self,
        peer: IpAddr,
        password: Option<&str>,
        session: Acceptor,
    ) -> Result<(), SocketError> {
        if let Some(key) = password {
            socket::set_md5(self.socket.as_fd(), peer, self.v6, Some(key.as_bytes()))?;
        }
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(socket::unmapped(peer), session);
        Ok(())
    }

    /// Stops taking connections from `peer` and removes its MD5 key.
    pub fn remove_peer(&self, peer: IpAddr) -> Result<(), SocketError> {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&socket::unmapped(peer));
        match socket::set_md5(self.socket.as_fd(), peer, self.v6, None) {
            // No key was set for it.
            Err(SocketError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
                Ok(())
            }
            other => other,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(socket: Arc<TcpListener>, peers: Peers) {
    loop {
        match socket.accept().await {
            Ok((stream, from)) => {
                let ip = socket::unmapped(from.ip());
                let session = peers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&ip)
                    .cloned();
                match session {
                    Some(session) => session.accept(stream),
                    None => debug!(%from, "BGP connection from an unknown address closed"),
                }
            }
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                warn!(error = %e, "BGP listener cannot accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
