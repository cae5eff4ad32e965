//! The CLI's side of the bus: read the daemon's properties, call its methods.

use zbus::proxy::CacheProperties;

use super::{
    BgpSessionRow, BusTarget, DaemonStatus, DbusError, MemberRow, ServiceRow, BUS_NAME, OBJECT_PATH,
};

#[zbus::proxy(
    interface = "io.ferrolb.Daemon1",
    default_service = "io.ferrolb.Daemon1",
    default_path = "/io/ferrolb/Daemon1"
)]
trait Daemon1 {
    #[zbus(property)]
    fn status(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn services(&self) -> zbus::Result<Vec<ServiceRow>>;
    #[zbus(property)]
    fn members(&self) -> zbus::Result<Vec<MemberRow>>;
    #[zbus(property)]
    fn bgp_sessions(&self) -> zbus::Result<Vec<BgpSessionRow>>;
    fn reload(&self) -> zbus::Result<()>;
    fn drain(&self, grace_seconds: u32) -> zbus::Result<()>;
    fn undrain(&self) -> zbus::Result<()>;
    fn restart(&self) -> zbus::Result<()>;
}

/// A connection to the running daemon.
pub struct Client {
    proxy: Daemon1Proxy<'static>,
    target: BusTarget,
}

impl Client {
    /// Connects to `target` and checks that the daemon is there, so "not running" is one
    /// clear error rather than a failure on the first call.
    pub async fn connect(target: BusTarget) -> Result<Self, DbusError> {
        let connection = match target.builder() {
            Ok(builder) => builder.build().await,
            Err(error) => Err(error),
        }
        .map_err(|source| DbusError::Connect {
            bus: target.clone(),
            source: Box::new(source),
        })?;
        let bus = zbus::fdo::DBusProxy::new(&connection)
            .await
            .map_err(|source| bus_error(&target, "DBusProxy", source))?;
        let name = zbus::names::BusName::from_static_str(BUS_NAME)
            .map_err(|source| bus_error(&target, "NameHasOwner", source.into()))?;
        let running = bus
            .name_has_owner(name)
            .await
            .map_err(|source| bus_error(&target, "NameHasOwner", source.into()))?;
        if !running {
            return Err(DbusError::NotRunning { bus: target });
        }
        let proxy = Daemon1Proxy::builder(&connection)
            .path(OBJECT_PATH)
            .and_then(|builder| builder.destination(BUS_NAME))
            .map(|builder| builder.cache_properties(CacheProperties::No))
            .map_err(|source| bus_error(&target, "proxy", source))?
            .build()
            .await
            .map_err(|source| bus_error(&target, "proxy", source))?;
        Ok(Client { proxy, target })
    }

    /// Reads every property.
    pub async fn status(&self) -> Result<DaemonStatus, DbusError> {
        Ok(DaemonStatus {
            summary: self.map("Status", self.proxy.status().await)?,
            services: self.map("Services", self.proxy.services().await)?,
            members: self.map("Members", self.proxy.members().await)?,
            bgp_sessions: self.map("BgpSessions", self.proxy.bgp_sessions().await)?,
        })
    }

    /// Calls `Reload`.
    pub async fn reload(&self) -> Result<(), DbusError> {
        self.map("Reload", self.proxy.reload().await)
    }

    /// Calls `Drain(grace_seconds)`.
    pub async fn drain(&self, grace_seconds: u32) -> Result<(), DbusError> {
        self.map("Drain", self.proxy.drain(grace_seconds).await)
    }

    /// Calls `Undrain`.
    pub async fn undrain(&self) -> Result<(), DbusError> {
        self.map("Undrain", self.proxy.undrain().await)
    }

    /// Calls `Restart`.
    pub async fn restart(&self) -> Result<(), DbusError> {
        self.map("Restart", self.proxy.restart().await)
    }

    /// Turns the bus's error names into errors an operator can act on.
    fn map<T>(&self, member: &str, result: zbus::Result<T>) -> Result<T, DbusError> {
        result.map_err(|source| classify(&self.target, member, source))
    }
}

fn classify(target: &BusTarget, member: &str, source: zbus::Error) -> DbusError {
    if let zbus::Error::MethodError(name, message, _) = &source {
        let message = message.clone().unwrap_or_default();
        match name.as_str() {
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner" => {
                return DbusError::NotRunning {
                    bus: target.clone(),
                }
            }
            "org.freedesktop.DBus.Error.AccessDenied" => {
                return DbusError::AccessDenied {
                    member: member.to_owned(),
                    message,
                }
            }
            other if other.starts_with("io.ferrolb.Daemon1.Error.") => {
                return DbusError::Refused {
                    member: member.to_owned(),
                    message,
                }
            }
            _ => {}
        }
    }
    bus_error(target, member, source)
}

fn bus_error(target: &BusTarget, member: &str, source: zbus::Error) -> DbusError {
    DbusError::Bus {
        member: member.to_owned(),
        bus: target.clone(),
        source: Box::new(source),
    }
}
