//! The bus side: the `io.ferrolb.Daemon1` interface object, [`serve`], and the task that turns
//! newly published snapshots into `PropertiesChanged` signals.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use zbus::fdo::{Properties, RequestNameFlags, RequestNameReply};
use zbus::names::InterfaceName;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::Value;
use zbus::Connection;

use super::{
    Action, BgpSessionRow, BusTarget, DaemonStatus, DbusError, MemberRow, Request, ServiceRow,
    BUS_NAME, INTERFACE, OBJECT_PATH,
};

/// The errors `Reload`, `Drain`, `Undrain` and `Restart` return on the bus
/// (`io.ferrolb.Daemon1.Error.*`).
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "io.ferrolb.Daemon1.Error")]
pub enum MethodError {
    /// A zbus-level failure.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The daemon refused the request; the text says why.
    Refused(String),
    /// The daemon is not taking requests (shutting down, or it dropped the request).
    Unavailable(String),
}

/// The object at `/io/ferrolb/Daemon1`. Properties read the latest published snapshot, so a
/// `Get` never waits on the daemon.
struct Daemon1 {
    status: watch::Receiver<DaemonStatus>,
    requests: mpsc::Sender<Request>,
}

impl Daemon1 {
    /// Hands `action` to the daemon and waits for its answer.
    async fn ask(&self, action: Action) -> Result<(), MethodError> {
        let method = action.method();
        let (reply, answer) = oneshot::channel();
        if self.requests.send(Request { action, reply }).await.is_err() {
            return Err(MethodError::Unavailable(format!(
                "{method}: the daemon is not taking requests (shutting down?)"
            )));
        }
        match answer.await {
            Ok(Ok(())) => {
                tracing::info!(method, "D-Bus request done");
                Ok(())
            }
            Ok(Err(reason)) => {
                tracing::warn!(method, %reason, "D-Bus request refused");
                Err(MethodError::Refused(reason))
            }
            Err(_) => Err(MethodError::Unavailable(format!(
                "{method}: the daemon dropped the request without answering"
            ))),
        }
    }
}

#[zbus::interface(name = "io.ferrolb.Daemon1")]
impl Daemon1 {
    /// The one-line summary, as in systemd's STATUS=.
    #[zbus(property)]
    fn status(&self) -> String {
        self.status.borrow().summary.clone()
    }

    /// The Services: (namespace/name, address, pool, mode, nodes, reason not announced).
    #[zbus(property)]
    fn services(&self) -> Vec<ServiceRow> {
        self.status.borrow().services.clone()
    }

    /// The gossip members: (name, address, state).
    #[zbus(property)]
    fn members(&self) -> Vec<MemberRow> {
        self.status.borrow().members.clone()
    }

    /// The BGP sessions: (peer, state, uptime seconds, prefixes sent, last error).
    #[zbus(property)]
    fn bgp_sessions(&self) -> Vec<BgpSessionRow> {
        self.status.borrow().bgp_sessions.clone()
    }

    /// Re-reads the configuration and applies what changed.
    async fn reload(&self) -> Result<(), MethodError> {
        self.ask(Action::Reload).await
    }

    /// Hands every address away, answering for `grace_seconds` more.
    async fn drain(&self, grace_seconds: u32) -> Result<(), MethodError> {
        let grace = Duration::from_secs(u64::from(grace_seconds));
        self.ask(Action::Drain { grace }).await
    }

    /// Takes part in announcing again.
    async fn undrain(&self) -> Result<(), MethodError> {
        self.ask(Action::Undrain).await
    }

    /// Exits for a graceful restart.
    async fn restart(&self) -> Result<(), MethodError> {
        self.ask(Action::Restart).await
    }
}

/// The running service. Dropping it stops the change signals and, once the last clone of the
/// connection is gone, releases the name.
#[derive(Debug)]
pub struct Handle {
    connection: Connection,
    signals: JoinHandle<()>,
}

impl Handle {
    /// The bus connection (for the daemon's own use, e.g. its unique name in logs).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Releases the name and stops the change signals, so a restarting daemon can take it.
    pub async fn close(self) {
        self.signals.abort();
        if let Err(error) = self.connection.release_name(BUS_NAME).await {
            tracing::debug!(%error, "releasing the D-Bus name failed");
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.signals.abort();
    }
}

/// Connects to `target`, serves the interface at [`OBJECT_PATH`], owns [`BUS_NAME`] (failing
/// if another process does), and emits `PropertiesChanged` whenever `status` changes. Method
/// calls become [`Request`]s on `requests`.
pub async fn serve(
    target: BusTarget,
    status: watch::Receiver<DaemonStatus>,
    requests: mpsc::Sender<Request>,
) -> Result<Handle, DbusError> {
    let bus_error = |member: &str| {
        let bus = target.clone();
        let member = member.to_owned();
        move |source| DbusError::Bus {
            member,
            bus,
            source: Box::new(source),
        }
    };
    let iface = Daemon1 {
        status: status.clone(),
        requests,
    };
    let connection = target
        .builder()
        .and_then(|builder| builder.serve_at(OBJECT_PATH, iface))
        .map_err(bus_error("serve"))?
        .build()
        .await
        .map_err(|source| DbusError::Connect {
            bus: target.clone(),
            source: Box::new(source),
        })?;
    let reply = connection
        .request_name_with_flags(BUS_NAME, RequestNameFlags::DoNotQueue.into())
        .await
        .map_err(|source| match source {
            zbus::Error::NameTaken => DbusError::NameTaken {
                bus: target.clone(),
            },
            source => bus_error("RequestName")(source),
        })?;
    if !matches!(
        reply,
        RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner
    ) {
        return Err(DbusError::NameTaken { bus: target });
    }
    let emitter = SignalEmitter::new(&connection, OBJECT_PATH)
        .map_err(bus_error("serve"))?
        .into_owned();
    let signals = tokio::spawn(publish_changes(emitter, status));
    tracing::info!(name = BUS_NAME, bus = %target, "D-Bus interface up");
    Ok(Handle {
        connection,
        signals,
    })
}

/// Emits one `PropertiesChanged` per new snapshot, carrying only the properties whose value
/// changed, until the daemon drops its sender; unchanged tables stay off the bus.
async fn publish_changes(
    emitter: SignalEmitter<'static>,
    mut status: watch::Receiver<DaemonStatus>,
) {
    let mut last = status.borrow_and_update().clone();
    while status.changed().await.is_ok() {
        let now = status.borrow_and_update().clone();
        let mut changed: HashMap<&str, Value<'_>> = HashMap::new();
        if now.summary != last.summary {
            changed.insert("Status", Value::from(now.summary.as_str()));
        }
        if now.services != last.services {
            changed.insert("Services", Value::from(now.services.clone()));
        }
        if now.members != last.members {
            changed.insert("Members", Value::from(now.members.clone()));
        }
        if now.bgp_sessions != last.bgp_sessions {
            changed.insert("BgpSessions", Value::from(now.bgp_sessions.clone()));
        }
        if !changed.is_empty() {
            let interface = InterfaceName::from_static_str_unchecked(INTERFACE);
            if let Err(error) =
                Properties::properties_changed(&emitter, interface, changed, Cow::Borrowed(&[]))
                    .await
            {
                // A lost signal only delays a watcher; the next Get still answers right.
                tracing::warn!(%error, "emitting PropertiesChanged failed");
            }
        }
        last = now;
    }
}
