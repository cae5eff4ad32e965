//! Two state machines wired back to back through simulated TCP links, for collision tests:
//! both speakers connect and listen. Each link delivers in order; which link (and side)
//! goes next is chosen by a seeded generator, so tests can explore interleavings.

use super::*;

/// One side of the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// A TCP connection between the two: its id on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Link {
    pub a: ConnId,
    pub b: ConnId,
    /// Who opened it.
    pub opener: Side,
}

/// Something in flight towards `to` on link `link`.
#[derive(Debug, Clone)]
struct Delivery {
    to: Side,
    link: usize,
    event: Event,
}

pub(super) struct Sim {
    pub a: Fsm,
    pub b: Fsm,
    pub now: Duration,
    pub links: Vec<Link>,
    queue: Vec<Delivery>,
    rng: u64,
    next_inbound: u64,
}

impl Sim {
    /// Speakers with identifiers `a_id` and `b_id`, ASes 65001 and 65002.
    pub fn new(a_id: Ipv4Addr, b_id: Ipv4Addr, seed: u64) -> Sim {
        let a = FsmConfig {
            jitter_seed: seed,
            ..FsmConfig::new(65001, a_id, 65002)
        };
        let b = FsmConfig {
            jitter_seed: seed ^ 0x5555,
            ..FsmConfig::new(65002, b_id, 65001)
        };
        Sim {
            a: Fsm::new(a).expect("valid"),
            b: Fsm::new(b).expect("valid"),
            now: Duration::ZERO,
            links: Vec::new(),
            queue: Vec::new(),
            rng: seed,
            next_inbound: 0,
        }
    }

    fn fsm(&mut self, side: Side) -> &mut Fsm {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn local(&self, side: Side, link: &Link) -> ConnId {
        match side {
            Side::A => link.a,
            Side::B => link.b,
        }
    }

    fn link_of(&self, side: Side, conn: ConnId) -> Option<usize> {
        self.links.iter().position(|l| self.local(side, l) == conn)
    }

    fn send(&mut self, from: Side, conn: ConnId, event: impl Fn(ConnId) -> Event) {
        if let Some(link) = self.link_of(from, conn) {
            let to = from.other();
            let remote = self.local(to, &self.links[link]);
            self.queue.push(Delivery {
                to,
                link,
                event: event(remote),
            });
        }
    }

    /// Carries out `side`'s actions.
    fn perform(&mut self, side: Side, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Connect { conn } => {
                    let inbound = ConnId::inbound(self.next_inbound);
                    self.next_inbound += 1;
                    let (a, b) = match side {
                        Side::A => (conn, inbound),
                        Side::B => (inbound, conn),
                    };
                    let link = self.links.len();
                    self.links.push(Link { a, b, opener: side });
                    self.queue.push(Delivery {
                        to: side,
                        link,
                        event: Event::TcpConnected { conn },
                    });
                    self.queue.push(Delivery {
                        to: side.other(),
                        link,
                        event: Event::TcpAccepted { conn: inbound },
                    });
                }
                Action::SendOpen { conn, open } => self.send(side, conn, |c| Event::Open {
                    conn: c,
                    open: PeerOpen {
                        version: 4,
                        asn: open.asn,
                        hold_time: open.hold_time,
                        router_id: open.router_id,
                    },
                }),
                Action::SendKeepalive { conn } => {
                    self.send(side, conn, |c| Event::Keepalive { conn: c })
                }
                Action::SendNotification { conn, notification } => {
                    self.send(side, conn, |c| Event::Notification {
                        conn: c,
                        notification: notification.clone(),
                    })
                }
                Action::Close { conn, .. } => {
                    self.send(side, conn, |c| Event::TcpClosed { conn: c })
                }
                Action::SessionEstablished { .. }
                | Action::AdvertiseAll { .. }
                | Action::SessionDown { .. } => {}
            }
        }
    }

    fn random(&mut self, n: usize) -> usize {
        // xorshift64*; only needs to be deterministic.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }

    /// Starts both at time zero and runs until `until`. With `fifo`, deliveries go in the
    /// order they were sent; otherwise a random channel goes next (each stays in order).
    pub fn run(&mut self, until: Duration, fifo: bool) {
        for side in [Side::A, Side::B] {
            let now = self.now;
            let actions = self.fsm(side).handle(now, Event::ManualStart);
            self.perform(side, actions);
        }
        loop {
            if !self.queue.is_empty() {
                let pick = if fifo || self.rng == 0 {
                    0
                } else {
                    self.random(self.queue.len())
                };
                let (to, link) = (self.queue[pick].to, self.queue[pick].link);
                let first = self
                    .queue
                    .iter()
                    .position(|d| d.to == to && d.link == link)
                    .unwrap_or(pick);
                let d = self.queue.remove(first);
                let now = self.now;
                let actions = self.fsm(d.to).handle(now, d.event);
                self.perform(d.to, actions);
                continue;
            }
            let next = [self.a.next_deadline(), self.b.next_deadline()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = t;
                    for side in [Side::A, Side::B] {
                        let actions = self.fsm(side).on_timer(t);
                        self.perform(side, actions);
                    }
                }
                _ => break,
            }
        }
        self.now = until;
    }

    /// The link carrying the session on both sides, when both are Established on the
    /// same one.
    pub fn session_link(&self) -> Option<Link> {
        let (a, _) = self.a.established()?;
        let (b, _) = self.b.established()?;
        self.links.iter().copied().find(|l| l.a == a && l.b == b)
    }
}
