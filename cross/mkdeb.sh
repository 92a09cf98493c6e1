#!/usr/bin/env bash
# Build pinclaw's .deb from one binary: a staged tree packed by `dpkg-deb --build
# --root-owner-group` (every file root:root in the archive; the postinst gives
# /etc/pinclaw to the pinclaw group). cross/release.sh calls it per Debian architecture,
# cross/test-deb.sh for the x86-64 test package.
#
#   bash cross/mkdeb.sh BINARY DEB_ARCH OUT_DIR [DEB_VERSION]
#
# DEB_VERSION defaults to Cargo.toml's version (a pre-release "-rc.1" becomes "~rc.1" so
# that it sorts before the release). Prints the path of the .deb on its last line.
#
# What the package holds and why is in cross/README.md ("The .deb").
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ $# -lt 3 ]; then
  sed -n '6,7p' "$0" >&2
  exit 2
fi
BIN=$1 ARCH=$2 OUT=$3
VERSION=${4:-$(bash "$REPO/cross/version.sh" deb)}
MAINTAINER=${PINCLAW_DEB_MAINTAINER:-"pinclaw maintainers <maintainers@users.noreply.b-seed-c35b56a9.example>"}
[ -f "$BIN" ] || { echo "mkdeb: no binary at $BIN" >&2; exit 2; }
for tool in dpkg-deb gzip; do
  command -v "$tool" >/dev/null || { echo "mkdeb: $tool is not installed" >&2; exit 2; }
done

stage=$(mktemp -d "${TMPDIR:-/tmp}/pinclaw-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
umask 0022
chmod 0755 "$stage"

# --- files ----------------------------------------------------------------------------
install -D -m 0755 "$BIN" "$stage/usr/bin/pinclaw"
# /lib, not /usr/lib: Bullseye's deb-systemd-helper looks for units only in /lib (and
# /etc); on merged-/usr systems the two are one directory.
install -D -m 0644 "$REPO/systemd/pinclaw.service" "$stage/lib/systemd/system/pinclaw.service"
install -D -m 0644 "$REPO/systemd/pinclaw.sysusers" "$stage/usr/lib/sysusers.d/pinclaw.conf"
install -D -m 0644 "$REPO/systemd/pinclaw.tmpfiles" "$stage/usr/lib/tmpfiles.d/pinclaw.conf"
# The conffile: root:root 0640 in the archive, root:pinclaw after the postinst.
install -d -m 0750 "$stage/etc/pinclaw"
install -m 0640 "$REPO/config/pinclaw.toml" "$stage/etc/pinclaw/pinclaw.toml"

doc=$stage/usr/share/doc/pinclaw
install -d -m 0755 "$doc" "$doc/boards"
install -m 0644 "$REPO/README.md" "$doc/README.md"
install -m 0644 "$REPO"/boards/*.toml "$doc/boards/"
install -m 0644 "$REPO/cross/deb/copyright" "$doc/copyright"
# A native package's changelog (lintian wants one): this version, from this commit.
commit=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
date_r=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}")
printf 'pinclaw (%s) stable; urgency=medium\n\n  * Built from commit %s; see README.md.\n\n -- %s  %s\n' \
  "$VERSION" "$commit" "$MAINTAINER" "$date_r" | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"
install -D -m 0644 "$REPO/cross/deb/lintian-overrides" "$stage/usr/share/lintian/overrides/pinclaw"

# --- control ----------------------------------------------------------------------------
install -d -m 0755 "$stage/DEBIAN"
for s in postinst prerm postrm; do
  install -m 0755 "$REPO/cross/deb/$s" "$stage/DEBIAN/$s"
done
echo /etc/pinclaw/pinclaw.toml >"$stage/DEBIAN/conffiles"
# For debsums/dpkg --verify: every file but the conffile (dpkg tracks that one itself).
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f ! -path ./etc/pinclaw/pinclaw.toml -print |
  sed 's|^\./||' | LC_ALL=C sort | xargs md5sum) >"$stage/DEBIAN/md5sums"

# A dynamically linked binary (the glibc builds) needs libc6 of at least the newest
# GLIBC_x.y version it references; the static musl builds need nothing.
depends=""
if readelf -lW "$BIN" 2>/dev/null | grep -q 'Requesting program interpreter'; then
  floor=$(objdump -T "$BIN" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
  if [ -z "$floor" ]; then
    # objdump of another architecture: use the cross binutils if the host's can't read it.
    for od in aarch64-linux-gnu-objdump arm-linux-gnueabihf-objdump; do
      command -v "$od" >/dev/null || continue
      floor=$("$od" -T "$BIN" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
      [ -n "$floor" ] && break
    done
  fi
  [ -n "$floor" ] || { echo "mkdeb: $BIN is dynamic but its glibc floor is unreadable" >&2; exit 1; }
  depends="libc6 (>= $floor), "
fi
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: pinclaw
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $installed_size
Depends: ${depends}systemd | systemd-sysusers, systemd | systemd-tmpfiles
Section: net
Priority: optional
Description: always-on OpenClaw-protocol gateway for Raspberry Pi home hubs
 pinclaw speaks OpenClaw's gateway protocol (v4), runs the agent loop against
 OpenAI-compatible, Anthropic or Ollama models, exposes the board's GPIO pins
 and sensors as node commands and answers a Telegram bot, in about 5 MB of RAM.
 .
 The package runs it as the systemd service pinclaw (user pinclaw, in the gpio,
 i2c and spi groups) with its config in /etc/pinclaw/pinclaw.toml and its state
 in /var/lib/pinclaw. Members of the pinclaw group can use the pinclaw command
 line (pinclaw chat, pinclaw call) without sudo.
EOF

mkdir -p "$OUT"
deb=$OUT/pinclaw_${VERSION}_${ARCH}.deb
# xz for releases; PINCLAW_DEB_COMPRESSION=gzip packs test packages faster.
dpkg-deb --root-owner-group -Z"${PINCLAW_DEB_COMPRESSION:-xz}" --build "$stage" "$deb" >/dev/null
echo "$deb"
