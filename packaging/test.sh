#!/usr/bin/env bash
# Checks the packages packaging/build.sh made (as root, on a throwaway machine: it installs the
# .deb and removes it again):
#   .deb: dpkg -i; files, owners and modes; the system user; the gossip key generated once;
#         `ferrolb --version`; not started; the config kept as a conffile; remove, then purge.
#   .rpm: rpm -qlp / --configfiles / --scripts (rpm from Debian's `rpm` package).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "packaging test: $*" >&2; exit 1; }
expect_stat() { # path owner:group mode
    local got
    got=$(stat -c '%U:%G %a' "$1") || fail "$1 is missing"
    [ "$got" = "$2 $3" ] || fail "$1: $got, expected $2 $3"
}

deb=$(ls target/debian/ferrolb_*.deb | tail -n 1)
rpmfile=$(ls target/generate-rpm/ferrolb-*.rpm | tail -n 1)
echo "checking $deb and $rpmfile"

# --- .deb
if dpkg -s ferrolb >/dev/null 2>&1; then fail "ferrolb is already installed here"; fi
dpkg-deb --info "$deb" | grep -q 'Package: ferrolb' || fail "not a ferrolb package"
dpkg-deb --contents "$deb"
dpkg -i "$deb"
expect_stat /usr/bin/ferrolb root:root 755
expect_stat /usr/lib/systemd/system/ferrolb.service root:root 644
expect_stat /usr/share/dbus-1/system.d/io.ferrolb.Daemon1.conf root:root 644
expect_stat /usr/lib/sysusers.d/ferrolb.conf root:root 644
expect_stat /etc/ferrolb root:ferrolb 750
expect_stat /etc/ferrolb/ferrolb.toml root:ferrolb 640
expect_stat /etc/ferrolb/gossip.key ferrolb:ferrolb 600
getent passwd ferrolb | grep -q ':/usr/sbin/nologin$' || fail "no ferrolb system user with nologin"
[ "$(base64 -d /etc/ferrolb/gossip.key | wc -c)" = 32 ] || fail "the gossip key is not 32 bytes of base64"
dpkg-query -W -f='${Conffiles}\n' ferrolb | grep -q '/etc/ferrolb/ferrolb.toml' || fail "ferrolb.toml is not a conffile"
/usr/bin/ferrolb --version | grep -q '^ferrolb ' || fail "ferrolb --version"
/usr/bin/ferrolb check-config --config /etc/ferrolb/ferrolb.toml >/dev/null 2>&1 \
    || /usr/bin/ferrolb check-config --config /etc/ferrolb/ferrolb.toml 2>&1 | grep -q 'error' \
    || fail "check-config did not run"
# Reinstalling keeps the key (generated once) and an edited config.
key=$(cat /etc/ferrolb/gossip.key)
echo '# edited by the operator' >> /etc/ferrolb/ferrolb.toml
dpkg -i --force-confold "$deb" >/dev/null
[ "$(cat /etc/ferrolb/gossip.key)" = "$key" ] || fail "reinstall replaced the gossip key"
grep -q 'edited by the operator' /etc/ferrolb/ferrolb.toml || fail "reinstall replaced the edited config"
if [ -d /run/systemd/system ] && systemctl is-active --quiet ferrolb; then fail "installing started the daemon"; fi
dpkg -r ferrolb
[ ! -e /usr/bin/ferrolb ] || fail "remove left /usr/bin/ferrolb"
[ -e /etc/ferrolb/ferrolb.toml ] || fail "remove deleted the config (only purge may)"
dpkg -P ferrolb
[ ! -e /etc/ferrolb ] || fail "purge left /etc/ferrolb: $(ls -la /etc/ferrolb)"
dpkg -s ferrolb >/dev/null 2>&1 && fail "still installed after purge"
echo ".deb: installed, checked, removed and purged"

# --- .rpm
files=$(rpm -qlp "$rpmfile" 2>/dev/null)
for f in /usr/bin/ferrolb /usr/lib/systemd/system/ferrolb.service /etc/ferrolb/ferrolb.toml \
    /usr/share/dbus-1/system.d/io.ferrolb.Daemon1.conf /usr/lib/sysusers.d/ferrolb.conf; do
    grep -qx "$f" <<<"$files" || fail ".rpm lacks $f"
done
rpm -qp --configfiles "$rpmfile" 2>/dev/null | grep -qx /etc/ferrolb/ferrolb.toml || fail ".rpm: ferrolb.toml is not %config"
rpm -qp --scripts "$rpmfile" 2>/dev/null | grep -q 'gossip.key' || fail ".rpm has no post-install script"
rpm -qp --qf '%{NAME} %{VERSION}\n' "$rpmfile" 2>/dev/null | grep -q '^ferrolb ' || fail ".rpm name"
echo ".rpm: contents, config files and scripts checked"
