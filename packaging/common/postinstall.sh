# Shared by the .deb postinst and the .rpm %post (sourced text, POSIX sh).
# The user: systemd-sysusers when present (it reads /usr/lib/sysusers.d/ferrolb.conf), else useradd.
if ! getent passwd ferrolb >/dev/null; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers /usr/lib/sysusers.d/ferrolb.conf
    else
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --comment "ferrolb load-balancer daemon" ferrolb
    fi
fi
# The configuration stays readable by the daemon only.
chown root:ferrolb /etc/ferrolb /etc/ferrolb/ferrolb.toml
chmod 0750 /etc/ferrolb
chmod 0640 /etc/ferrolb/ferrolb.toml
# A gossip key on first install: the same file must be on every node, so copy this one to the
# others (or replace it everywhere by one of your own). Never overwritten.
if [ ! -e /etc/ferrolb/gossip.key ]; then
    umask 077
    head -c 32 /dev/urandom | base64 > /etc/ferrolb/gossip.key
    chown ferrolb:ferrolb /etc/ferrolb/gossip.key
    chmod 0600 /etc/ferrolb/gossip.key
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
cat <<'MSG'
ferrolb is installed but not started. Next:
  1. edit /etc/ferrolb/ferrolb.toml (pools, how to reach the API server), then
     ferrolb check-config
  2. copy /etc/ferrolb/gossip.key to every node (the same key everywhere)
  3. systemctl enable --now ferrolb
     ferrolb status
MSG
