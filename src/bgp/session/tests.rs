//! The session task against a scripted peer on loopback: what goes on the wire, in order.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::*;
use crate::bgp::codec::{
    frame_len, AfiSafi, Capability, Context, Message, Open, RouteRefresh, Update,
};
use crate::bgp::fsm::State;
use crate::bgp::speaker::RouteAttrs;

const CTX: Context = Context {
    four_octet_as: true,
    extended_messages: false,
};
const TIMEOUT: Duration = Duration::from_secs(10);

/// A peer that reads and writes whole messages.
struct Peer {
    stream: TcpStream,
    buf: BytesMut,
}

impl Peer {
    async fn recv(&mut self) -> Option<Message> {
        loop {
            if let Some(len) = frame_len(&self.buf, &CTX).unwrap() {
                let frame = self.buf.split_to(len);
                return Some(Message::decode(&frame, &CTX).unwrap());
            }
            let n = tokio::time::timeout(TIMEOUT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("a message in time")
                .unwrap();
            if n == 0 {
                return None;
            }
        }
    }

    async fn send(&mut self, m: Message) {
        self.stream
            .write_all(&m.encode(&CTX).unwrap())
            .await
            .unwrap();
    }

    async fn update(&mut self) -> Update {
        loop {
            match self.recv().await {
                Some(Message::Update(u)) => return u,
                Some(Message::Keepalive) => continue,
                other => panic!("expected an UPDATE, got {other:?}"),
            }
        }
    }
}

/// Starts a session to a peer on loopback speaking `families`; returns both once the peer
/// has our OPEN and has answered with its OPEN and KEEPALIVE.
async fn session_with(
    families: &[AfiSafi],
    routes: &Routes,
) -> (Session, Peer, watch::Sender<Arc<Routes>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = SessionConfig::new("fake", IpAddr::V4(Ipv4Addr::LOCALHOST), 64600, 64512);
    cfg.port = listener.local_addr().unwrap().port();
    cfg.connect_retry = Duration::from_secs(1);
    let (tx, rx) = watch::channel(Arc::new(routes.clone()));
    let session = Session::spawn(cfg, rx);
    let (stream, _) = tokio::time::timeout(TIMEOUT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut peer = Peer {
        stream,
        buf: BytesMut::new(),
    };
    let Some(Message::Open(ours)) = peer.recv().await else {
        panic!("expected our OPEN");
    };
    assert_eq!(ours.asn, 64600);
    let mut capabilities: Vec<Capability> = families
        .iter()
        .copied()
        .map(Capability::Multiprotocol)
        .collect();
    capabilities.push(Capability::FourOctetAs(64512));
    peer.send(Message::Open(Open {
        asn: 64512,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities,
    }))
    .await;
    peer.send(Message::Keepalive).await;
    (session, peer, tx)
}

fn routes(prefixes: &[&str]) -> Routes {
    let attrs = Arc::new(RouteAttrs::default());
    prefixes
        .iter()
        .map(|p| (p.parse().unwrap(), Arc::clone(&attrs)))
        .collect()
}

#[tokio::test]
async fn announces_then_end_of_rib_resends_on_route_refresh_and_withdraws_before_cease() {
    let (session, mut peer, tx) = session_with(
        &[AfiSafi::IPV4_UNICAST],
        &routes(&["10.96.0.1/32", "fd00::1/128"]),
    )
    .await;
    assert_eq!(peer.recv().await, Some(Message::Keepalive));
    // IPv4 only was negotiated: the /128 is not sent.
    let first = peer.update().await;
    assert_eq!(first.nlri, vec!["10.96.0.1/32".parse().unwrap()]);
    assert_eq!(first.attributes.next_hop, Some(Ipv4Addr::LOCALHOST));
    assert!(first.mp_reach.is_none());
    assert!(peer.update().await.end_of_rib_family().is_some());
    let status = session.status().borrow().clone();
    assert_eq!(status.state, State::Established);
    assert_eq!(status.families, (true, false));
    assert_eq!((status.prefixes_sent, status.updates_sent), (1, 2));

    // A change is sent as the difference.
    tx.send_replace(Arc::new(routes(&["10.96.0.1/32", "10.96.0.2/32"])));
    assert_eq!(
        peer.update().await.nlri,
        vec!["10.96.0.2/32".parse().unwrap()]
    );

    // ROUTE-REFRESH: everything again, then End-of-RIB.
    peer.send(Message::RouteRefresh(RouteRefresh {
        family: AfiSafi::IPV4_UNICAST,
        subtype: 0,
    }))
    .await;
    let again = peer.update().await;
    assert_eq!(again.nlri.len(), 2);
    assert!(peer.update().await.end_of_rib_family().is_some());

    // Stop::Withdraw: withdrawals, then Cease 6/2, then the connection closes.
    let stop = tokio::spawn(session.stop(Stop::Withdraw));
    let gone = peer.update().await;
    assert_eq!(gone.withdrawn.len(), 2);
    match peer.recv().await {
        Some(Message::Notification(n)) => assert_eq!(n.code.to_wire(), (6, 2)),
        other => panic!("expected Cease, got {other:?}"),
    }
    assert_eq!(peer.recv().await, None);
    stop.await.unwrap();
}

#[tokio::test]
async fn a_peer_without_a_common_family_gets_unsupported_capability() {
    let vpn = AfiSafi { afi: 1, safi: 128 };
    let (session, mut peer, _tx) = session_with(&[vpn], &Routes::new()).await;
    match peer.recv().await {
        Some(Message::Notification(n)) => assert_eq!(n.code.to_wire(), (2, 7)),
        other => panic!("expected an OPEN error, got {other:?}"),
    }
    assert_eq!(peer.recv().await, None);
    let mut status = session.status();
    let s = status
        .wait_for(|s| s.last_error.is_some())
        .await
        .unwrap()
        .clone();
    assert!(s
        .last_error
        .unwrap()
        .starts_with("we sent NOTIFICATION 2/7"));
    assert_ne!(s.state, State::Established);
    session.stop(Stop::Restart).await;
}

#[tokio::test]
async fn restart_closes_without_notification_or_withdrawal() {
    let (session, mut peer, _tx) =
        session_with(&[AfiSafi::IPV4_UNICAST], &routes(&["10.96.0.1/32"])).await;
    assert_eq!(peer.recv().await, Some(Message::Keepalive));
    assert_eq!(peer.update().await.nlri.len(), 1);
    assert!(peer.update().await.end_of_rib_family().is_some());
    session.stop(Stop::Restart).await;
    loop {
        match peer.recv().await {
            None => break,
            Some(Message::Keepalive) => continue,
            other => panic!("expected only the close, got {other:?}"),
        }
    }
}
