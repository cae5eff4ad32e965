//! A private `dbus-daemon` whose configuration copies the system bus's default policy and
//! includes the shipped one (packaging/dbus/io.ferrolb.Daemon1.conf).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};

use ferrolb::host::dbus::BusTarget;

/// A private bus with the system bus's default policy plus ours; killed on drop.
pub struct PrivateBus {
    child: Child,
    /// The bus address (`unix:path=…`).
    pub address: String,
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    /// Starts one.
    pub fn start() -> PrivateBus {
        let dir = tempfile::tempdir().expect("tempdir");
        // Other users (the read-only test) must reach the socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod tempdir");
        let policy = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/dbus/io.ferrolb.Daemon1.conf"
        );
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <!-- As /usr/share/dbus-1/system.conf: method calls and names need a hole punched. -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"#,
                socket = dir.path().join("bus").display(),
            ),
        )
        .expect("write bus config");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon runs (apt-get install dbus-daemon)");
        let mut address = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut address)
            .expect("read the bus address");
        // No address means dbus-daemon refused the config, the included policy file too.
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon did not start (policy file invalid?): {address:?}"
        );
        PrivateBus {
            child,
            address: address.trim().to_owned(),
            _dir: dir,
        }
    }

    /// The address as [`BusTarget`].
    pub fn target(&self) -> BusTarget {
        BusTarget::Address(self.address.clone())
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
