//! The interface table ([`NetState`]), kept current with rtnetlink: subscribe to link and
//! address events first, then dump, so nothing that happens during the dump is missed; when
//! the kernel reports an overrun (ENOBUFS: events were dropped) dump again. No periodic rescan.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{Handle, MulticastGroup};

use super::frame::MacAddr;

use super::interfaces::{Link, LinkAddress, NetState};

/// How long a dump may take before the connection is considered broken.
const DUMP_TIMEOUT: Duration = Duration::from_secs(10);
/// Receive buffer for events: room for a burst (hundreds of interfaces changing at once).
const RECV_BUFFER: usize = 4 << 20;

/// Why the interface table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The rtnetlink socket could not be opened or subscribed.
    #[error("cannot open the rtnetlink socket: {0}")]
    Socket(#[source] io::Error),
    /// A dump request failed.
    #[error("dumping {what} failed: {detail}")]
    Dump {
        /// Links or addresses.
        what: &'static str,
        /// What rtnetlink said.
        detail: String,
    },
    /// A dump did not finish in time.
    #[error("dumping {0} timed out")]
    DumpTimeout(&'static str),
}

/// Incoming rtnetlink events (and overrun notices).
pub(crate) type Events = futures_util::stream::BoxStream<
    'static,
    (
        NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    ),
>;

/// A subscribed rtnetlink connection. Dropping it stops the connection task.
pub(crate) struct Connection {
    handle: Handle,
    pub(crate) events: Events,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Connection {
    /// Opens a connection subscribed to link and IPv4/IPv6 address events (in the network
    /// namespace of the calling thread). Needs a tokio runtime.
    pub(crate) fn open() -> Result<Connection, NetlinkError> {
        let (mut conn, handle, events) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])
        .map_err(NetlinkError::Socket)?;
        if let Err(error) = conn.socket_mut().socket_mut().set_rx_buf_sz(RECV_BUFFER) {
            // The default buffer works; an overrun is recovered by a dump anyway.
            tracing::debug!(%error, "cannot enlarge the rtnetlink receive buffer");
        }
        let task = tokio::spawn(conn);
        Ok(Connection {
            handle,
            events: events.boxed(),
            task,
        })
    }

    /// The whole table, from a dump.
    pub(crate) async fn dump(&mut self) -> Result<NetState, NetlinkError> {
        let links = tokio::time::timeout(
            DUMP_TIMEOUT,
            self.handle
                .link()
                .get()
                .execute()
                .try_collect::<Vec<LinkMessage>>(),
        )
        .await
        .map_err(|_| NetlinkError::DumpTimeout("links"))?
        .map_err(|e| NetlinkError::Dump {
            what: "links",
            detail: e.to_string(),
        })?;
        let addresses = tokio::time::timeout(
            DUMP_TIMEOUT,
            self.handle
                .address()
                .get()
                .execute()
                .try_collect::<Vec<AddressMessage>>(),
        )
        .await
        .map_err(|_| NetlinkError::DumpTimeout("addresses"))?
        .map_err(|e| NetlinkError::Dump {
            what: "addresses",
            detail: e.to_string(),
        })?;
        let mut state = NetState::default();
        for m in &links {
            if let Some(link) = link_from(m) {
                state.links.insert(link.index, link);
            }
        }
        for m in &addresses {
            if let Some(a) = address_from(m) {
                state.addresses.insert(a);
            }
        }
        Ok(state)
    }

    /// The next event, waiting for it; `None` when the connection is gone.
    pub(crate) async fn next(&mut self) -> Option<NetlinkMessage<RouteNetlinkMessage>> {
        self.events.next().await.map(|(m, _)| m)
    }

    /// An event already queued, without waiting.
    pub(crate) fn next_ready(&mut self) -> Option<NetlinkMessage<RouteNetlinkMessage>> {
        self.events.next().now_or_never().flatten().map(|(m, _)| m)
    }
}

/// What one message means for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The table changed.
    Changed,
    /// Nothing relevant.
    Unchanged,
    /// Events were lost: the table must be dumped again.
    Overrun,
}

/// Applies one event to `state`.
pub(crate) fn apply(state: &mut NetState, message: NetlinkMessage<RouteNetlinkMessage>) -> Applied {
    let before_links = state.links.len();
    let before_addresses = state.addresses.len();
    match message.payload {
        NetlinkPayload::Overrun(_) => return Applied::Overrun,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
            if let Some(link) = link_from(&m) {
                let old = state.links.insert(link.index, link.clone());
                return changed(old.as_ref() != Some(&link));
            }
        }
        // A bridge port leaving its bridge is a DelLink of family AF_BRIDGE: not a deletion.
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m))
            if m.header.interface_family != AddressFamily::Bridge =>
        {
            let index = m.header.index;
            state.links.remove(&index);
            state.addresses.retain(|a| a.index != index);
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) => {
            if let Some(a) = address_from(&m) {
                remove_address(state, &a);
                state.addresses.insert(a);
                return Applied::Changed;
            }
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(m)) => {
            if let Some(a) = address_from(&m) {
                remove_address(state, &a);
            }
        }
        _ => {}
    }
    changed(state.links.len() != before_links || state.addresses.len() != before_addresses)
}

fn changed(yes: bool) -> Applied {
    if yes {
        Applied::Changed
    } else {
        Applied::Unchanged
    }
}

fn remove_address(state: &mut NetState, a: &LinkAddress) {
    state.addresses.retain(|x| {
        !(x.index == a.index && x.address == a.address && x.prefix_len == a.prefix_len)
    });
}

/// A link from `RTM_NEWLINK`; `None` for bridge-port notifications (family `AF_BRIDGE`),
/// which carry only part of the link.
pub(crate) fn link_from(m: &LinkMessage) -> Option<Link> {
    if m.header.interface_family == AddressFamily::Bridge {
        return None;
    }
    let flags = m.header.flags;
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        up: flags.contains(LinkFlags::Up),
        running: flags.contains(LinkFlags::Running),
        ethernet: m.header.link_layer_type == LinkLayerType::Ether,
        noarp: flags.contains(LinkFlags::Noarp),
        loopback: flags.contains(LinkFlags::Loopback),
        master: None,
        mac: None,
    };
    for attribute in &m.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name.clone_from(name),
            LinkAttribute::Controller(index) => link.master = Some(*index),
            LinkAttribute::Address(bytes) => {
                if let [a, b, c, d, e, f] = bytes[..] {
                    link.mac = Some(MacAddr::new(a, b, c, d, e, f));
                }
            }
            _ => {}
        }
    }
    Some(link)
}

/// An address from `RTM_NEWADDR`/`RTM_DELADDR`: the local address (`IFA_LOCAL`, which differs
/// from `IFA_ADDRESS` on point-to-point links), else `IFA_ADDRESS`.
pub(crate) fn address_from(m: &AddressMessage) -> Option<LinkAddress> {
    let mut local: Option<IpAddr> = None;
    let mut address: Option<IpAddr> = None;
    for attribute in &m.attributes {
        match attribute {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    Some(LinkAddress {
        index: m.header.index,
        address: local.or(address)?,
        prefix_len: m.header.prefix_len,
        host_scope: m.header.scope == AddressScope::Host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::LinkHeader;

    fn link_message(
        family: AddressFamily,
        index: u32,
        name: &str,
        flags: LinkFlags,
    ) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header = LinkHeader {
            interface_family: family,
            index,
            link_layer_type: LinkLayerType::Ether,
            flags,
            ..LinkHeader::default()
        };
        m.attributes = vec![
            LinkAttribute::IfName(name.into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 9]),
        ];
        m
    }

    fn address_message(index: u32, a: &str, prefix_len: u8) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.index = index;
        m.header.prefix_len = prefix_len;
        m.attributes = vec![AddressAttribute::Address(a.parse().unwrap())];
        m
    }

    fn inner(m: RouteNetlinkMessage) -> NetlinkMessage<RouteNetlinkMessage> {
        NetlinkMessage::from(m)
    }

    #[test]
    fn links_are_read_from_messages() {
        let m = link_message(
            AddressFamily::Unspec,
            4,
            "eth0",
            LinkFlags::Up | LinkFlags::Running | LinkFlags::LowerUp,
        );
        let l = link_from(&m).unwrap();
        assert_eq!(l.index, 4);
        assert_eq!(l.name, "eth0");
        assert!(l.up && l.running && l.ethernet && !l.noarp && !l.loopback);
        assert_eq!(l.mac, Some(MacAddr::new(2, 0, 0, 0, 0, 9)));
        assert_eq!(l.master, None);
        assert!(link_from(&link_message(
            AddressFamily::Bridge,
            4,
            "eth0",
            LinkFlags::Up
        ))
        .is_none());
    }

    #[test]
    fn events_update_the_table() {
        let mut s = NetState::default();
        let up = LinkFlags::Up | LinkFlags::Running;
        let new_link = |flags| {
            inner(RouteNetlinkMessage::NewLink(link_message(
                AddressFamily::Unspec,
                4,
                "eth0",
                flags,
            )))
        };
        assert_eq!(apply(&mut s, new_link(up)), Applied::Changed);
        assert_eq!(apply(&mut s, new_link(up)), Applied::Unchanged);
        assert_eq!(apply(&mut s, new_link(LinkFlags::Up)), Applied::Changed);
        assert!(!s.links[&4].running);

        let add = inner(RouteNetlinkMessage::NewAddress(address_message(
            4, "10.0.0.2", 24,
        )));
        assert_eq!(apply(&mut s, add), Applied::Changed);
        let add6 = inner(RouteNetlinkMessage::NewAddress(address_message(
            4, "fd00::2", 64,
        )));
        apply(&mut s, add6);
        assert_eq!(s.addresses.len(), 2);
        let del = inner(RouteNetlinkMessage::DelAddress(address_message(
            4, "10.0.0.2", 24,
        )));
        assert_eq!(apply(&mut s, del), Applied::Changed);
        assert_eq!(s.addresses.len(), 1);

        // A bridge port leaving its bridge is not the interface going away.
        let port_del = inner(RouteNetlinkMessage::DelLink(link_message(
            AddressFamily::Bridge,
            4,
            "eth0",
            up,
        )));
        assert_eq!(apply(&mut s, port_del), Applied::Unchanged);
        assert!(s.links.contains_key(&4));

        let del_link = inner(RouteNetlinkMessage::DelLink(link_message(
            AddressFamily::Unspec,
            4,
            "eth0",
            up,
        )));
        assert_eq!(apply(&mut s, del_link), Applied::Changed);
        assert!(s.links.is_empty() && s.addresses.is_empty());
    }

    #[test]
    fn an_overrun_asks_for_a_dump() {
        let mut s = NetState::default();
        let m = NetlinkMessage::new(Default::default(), NetlinkPayload::Overrun(Vec::new()));
        assert_eq!(apply(&mut s, m), Applied::Overrun);
    }

    /// The real kernel, in this process's namespace: `lo` is always there, up, loopback, and
    /// holds 127.0.0.1/8 with host scope.
    #[tokio::test]
    async fn a_dump_reads_loopback() {
        let mut c = Connection::open().expect("rtnetlink");
        let s = c.dump().await.expect("dump");
        let lo = s.by_name("lo").expect("lo");
        assert!(lo.loopback && lo.up && !lo.ethernet);
        let a = s
            .addresses_of(lo.index)
            .find(|a| a.address == IpAddr::from([127, 0, 0, 1]))
            .expect("127.0.0.1");
        assert_eq!(a.prefix_len, 8);
        assert!(a.host_scope);
    }
}
