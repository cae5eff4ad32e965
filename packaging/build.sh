#!/usr/bin/env bash
# Builds the .deb (cargo-deb) and the .rpm (cargo-generate-rpm) from one release build:
#   packaging/build.sh            -> target/debian/ferrolb_*.deb, target/generate-rpm/ferrolb-*.rpm
# The packaging tools are installed with `cargo install --locked` when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo-deb cargo-generate-rpm; do
    command -v "$tool" >/dev/null || cargo install --locked "$tool"
done

# One source for the install logic of both formats: packaging/common/postinstall.sh.
out=target/packaging
rm -rf "$out" && mkdir -p "$out/debian" "$out/rpm"
{
    printf '#!/bin/sh\nset -e\nif [ "$1" = configure ]; then\n'
    cat packaging/common/postinstall.sh
    printf 'fi\n'
} > "$out/debian/postinst"
cp packaging/debian/prerm packaging/debian/postrm "$out/debian/"
cp packaging/common/postinstall.sh "$out/rpm/post"
cp packaging/rpm/preun packaging/rpm/postun "$out/rpm/"
chmod 755 "$out"/debian/*

cargo build --release --locked --bin ferrolb
cargo deb --no-build --no-strip
cargo generate-rpm
ls -l target/debian/*.deb target/generate-rpm/*.rpm
