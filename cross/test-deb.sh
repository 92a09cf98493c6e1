#!/usr/bin/env bash
# Tests the .deb packages (CI runs it after cross/release.sh):
#   1. dpkg-deb: the metadata (version from Cargo.toml, architecture, dependencies) and the
#      exact file list with modes and owners, the conffile, the unit's ExecStart, and that
#      the binary is of the package's architecture (ARMv6 for armhf);
#   2. lintian on the arm64 and armhf packages: no error or warning beyond the overrides in
#      cross/deb/lintian-overrides;
#   3. install, upgrade, remove and purge of the x86-64 build of the same package in a
#      Debian 12 chroot (debootstrap; the base is cached under $CACHE). There is no
#      systemd there, so it checks what the maintainer scripts leave: the user and its
#      groups, files, owners and modes, the enablement symlink, `pinclaw --version`,
#      `pinclaw config check /etc/pinclaw/pinclaw.toml` as the service user; then runs the
#      gateway as the service would (user pinclaw, UMask 0077) and `pinclaw call health`
#      as a login user in the pinclaw group (it must read the token) and as one outside it
#      (it must not).
#
#   bash cross/test-deb.sh --binary X86_64_PINCLAW [DIST_DIR]
#
# The x86-64 binary can be any build of this commit (CI passes the debug build the native
# test step made; it is stripped before packaging): the package around it is what is
# tested. Needs root (chroot, mount), debootstrap, lintian, dpkg-deb.
# Env: PINCLAW_CACHE_DIR (debootstrap base), PINCLAW_DEBIAN_MIRROR, PINCLAW_DEB_SKIP_CHROOT=1.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${PINCLAW_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/pinclaw}
MIRROR=${PINCLAW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
X86_BIN=""
while [ $# -gt 0 ]; do
  case $1 in
    --binary) X86_BIN=$2; shift 2 ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
DIST=${1:-${PINCLAW_DIST_DIR:-$REPO/dist}}
VERSION=$(bash "$REPO/cross/version.sh")
DEB_VERSION=$(bash "$REPO/cross/version.sh" deb)
[ -n "$X86_BIN" ] && [ -f "$X86_BIN" ] || { echo "test-deb: --binary X86_64_PINCLAW is required" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pinclaw-test-deb.XXXXXX")
ROOT=""
MOUNTED=""
GW_PID=""
cleanup() {
  if [ -n "$GW_PID" ]; then kill -KILL "$GW_PID" 2>/dev/null || true; fi
  if [ -n "$MOUNTED" ]; then umount "$ROOT/proc" 2>/dev/null || umount -l "$ROOT/proc" || true; fi
  if [ -n "$ROOT" ] && ! mountpoint -q "$ROOT/proc"; then rm -rf "$ROOT"; fi
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
ok() { echo "  ok: $*"; }
fail() { echo "  FAIL: $*" >&2; failures=$((failures + 1)); }
expect() { # DESCRIPTION EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then ok "$1: $3"; else fail "$1: expected '$2', got '$3'"; fi
}
t_step=$SECONDS
step() { echo "==> [prev $((SECONDS - t_step)) s] $*"; t_step=$SECONDS; }

# --- the x86-64 test package ----------------------------------------------------------------
step "x86-64 test package from $X86_BIN (stripped copy)"
strip -o "$work/pinclaw" "$X86_BIN"
# gzip: a debug build packs in seconds instead of half a minute with xz.
DEB_AMD64=$(PINCLAW_DEB_COMPRESSION=gzip bash "$REPO/cross/mkdeb.sh" "$work/pinclaw" amd64 "$work/v1" | tail -n 1)
# The upgrade: the same package with a higher version.
DEB_AMD64_UP=$(PINCLAW_DEB_COMPRESSION=gzip bash "$REPO/cross/mkdeb.sh" "$work/pinclaw" amd64 "$work/v2" "$DEB_VERSION+test1" | tail -n 1)
ls -l "$DEB_AMD64" "$DEB_AMD64_UP"

# --- 1. dpkg-deb: metadata and contents -------------------------------------------------------
# The files every package holds, as `dpkg-deb -c` lists them: mode owner/group path.
EXPECTED_FILES="drwxr-xr-x root/root ./
drwxr-xr-x root/root ./etc/
drwxr-x--- root/root ./etc/pinclaw/
-rw-r----- root/root ./etc/pinclaw/pinclaw.toml
drwxr-xr-x root/root ./lib/
drwxr-xr-x root/root ./lib/systemd/
drwxr-xr-x root/root ./lib/systemd/system/
-rw-r--r-- root/root ./lib/systemd/system/pinclaw.service
drwxr-xr-x root/root ./usr/
drwxr-xr-x root/root ./usr/bin/
-rwxr-xr-x root/root ./usr/bin/pinclaw
drwxr-xr-x root/root ./usr/lib/
drwxr-xr-x root/root ./usr/lib/sysusers.d/
-rw-r--r-- root/root ./usr/lib/sysusers.d/pinclaw.conf
drwxr-xr-x root/root ./usr/lib/tmpfiles.d/
-rw-r--r-- root/root ./usr/lib/tmpfiles.d/pinclaw.conf
drwxr-xr-x root/root ./usr/share/
drwxr-xr-x root/root ./usr/share/doc/
drwxr-xr-x root/root ./usr/share/doc/pinclaw/
-rw-r--r-- root/root ./usr/share/doc/pinclaw/README.md
drwxr-xr-x root/root ./usr/share/doc/pinclaw/boards/
$(cd "$REPO/boards" && for f in *.toml; do echo "-rw-r--r-- root/root ./usr/share/doc/pinclaw/boards/$f"; done)
-rw-r--r-- root/root ./usr/share/doc/pinclaw/changelog.gz
-rw-r--r-- root/root ./usr/share/doc/pinclaw/copyright
drwxr-xr-x root/root ./usr/share/lintian/
drwxr-xr-x root/root ./usr/share/lintian/overrides/
-rw-r--r-- root/root ./usr/share/lintian/overrides/pinclaw"

# check_deb DEB ARCH MACHINE: what `readelf -h` calls the binary's machine.
check_deb() {
  local deb=$1 arch=$2 machine=$3 x
  echo "-- $(basename "$deb")"
  expect Package pinclaw "$(dpkg-deb -f "$deb" Package)"
  expect Version "$4" "$(dpkg-deb -f "$deb" Version)"
  expect Architecture "$arch" "$(dpkg-deb -f "$deb" Architecture)"
  local depends
  depends=$(dpkg-deb -f "$deb" Depends)
  case $depends in
    *"systemd | systemd-sysusers, systemd | systemd-tmpfiles"*) ok "Depends: $depends" ;;
    *) fail "Depends lacks systemd-sysusers/systemd-tmpfiles: $depends" ;;
  esac
  local listing
  listing=$(dpkg-deb -c "$deb" | awk '{print $1, $2, $6}' | sort -k3)
  if [ "$listing" = "$(sort -k3 <<<"$EXPECTED_FILES")" ]; then
    ok "contents: $(wc -l <<<"$listing") entries, modes and owners as expected"
  else
    fail "contents differ from the expected list (< expected, > in the package):"
    diff <(sort -k3 <<<"$EXPECTED_FILES") <(echo "$listing") >&2 || true
  fi
  mkdir -p "$work/ctrl" && rm -rf "$work/ctrl"/*
  dpkg-deb -e "$deb" "$work/ctrl"
  expect conffiles /etc/pinclaw/pinclaw.toml "$(cat "$work/ctrl/conffiles")"
  for x in postinst prerm postrm; do
    [ -x "$work/ctrl/$x" ] && ok "$x is executable" || fail "$x missing or not executable"
  done
  local fs=$work/fs
  rm -rf "$fs" && mkdir -p "$fs"
  dpkg-deb -x "$deb" "$fs"
  expect "unit ExecStart" "ExecStart=/usr/bin/pinclaw gateway --config /etc/pinclaw/pinclaw.toml" \
    "$(grep '^ExecStart=' "$fs/lib/systemd/system/pinclaw.service")"
  cmp -s "$fs/etc/pinclaw/pinclaw.toml" "$REPO/config/pinclaw.toml" &&
    ok "the conffile is config/pinclaw.toml" || fail "the conffile differs from config/pinclaw.toml"
  expect "binary machine" "$machine" "$(readelf -h "$fs/usr/bin/pinclaw" | sed -n 's/^ *Machine: *//p')"
  if [ "$arch" = armhf ]; then
    expect "armhf binary Tag_CPU_arch (ARMv6 for every 32-bit Raspberry Pi OS)" v6 \
      "$(readelf -A "$fs/usr/bin/pinclaw" | sed -n 's/^ *Tag_CPU_arch: //p')"
  fi
  if [ "$arch" != amd64 ]; then
    if readelf -lW "$fs/usr/bin/pinclaw" | grep -q 'program interpreter'; then
      fail "the $arch binary is dynamically linked (the packages ship static builds)"
    else
      ok "static binary, Depends names no libc"
    fi
  fi
  printf '  size: %d bytes (.deb), Installed-Size %s KiB\n' "$(stat -c %s "$deb")" "$(dpkg-deb -f "$deb" Installed-Size)"
}

step "dpkg-deb: metadata and contents"
shopt -s nullglob
release_debs=("$DIST"/pinclaw_*_arm64.deb "$DIST"/pinclaw_*_armhf.deb)
for deb in "${release_debs[@]}"; do
  case $deb in
    *_arm64.deb) check_deb "$deb" arm64 AArch64 "$DEB_VERSION" ;;
    *_armhf.deb) check_deb "$deb" armhf ARM "$DEB_VERSION" ;;
  esac
done
((${#release_debs[@]} == 2)) || fail "expected dist/pinclaw_${DEB_VERSION}_arm64.deb and _armhf.deb (run cross/release.sh)"
check_deb "$DEB_AMD64" amd64 "Advanced Micro Devices X86-64" "$DEB_VERSION"

# --- 2. lintian ---------------------------------------------------------------------------------
step "lintian"
if command -v lintian >/dev/null; then
  # The release packages; the x86-64 one differs only in its binary (a test build).
  for deb in "${release_debs[@]}"; do
    echo "-- lintian $(basename "$deb")"
    # Errors and warnings fail; info tags are shown. (With --show-overrides, lintian
    # 2.116 counts the overridden tags for --fail-on too, so they are listed from the
    # overrides file instead.)
    if lintian --fail-on error,warning --display-info "$deb"; then
      ok "lintian: no error or warning; overridden, with the reasons in cross/deb/lintian-overrides: $(
        sed -n 's/^pinclaw: \([a-z0-9-]*\).*/\1/p' "$REPO/cross/deb/lintian-overrides" | sort -u | tr '\n' ' ')"
    else
      fail "lintian found errors or warnings in $(basename "$deb")"
    fi
  done
else
  fail "lintian is not installed"
fi

# --- 3. install / upgrade / remove / purge in a Debian chroot ------------------------------------
if [ -n "${PINCLAW_DEB_SKIP_CHROOT:-}" ]; then
  echo "PINCLAW_DEB_SKIP_CHROOT is set: no chroot test"
elif [ "$(id -u)" -ne 0 ] || ! command -v debootstrap >/dev/null; then
  fail "the chroot test needs root and debootstrap"
else
  step "Debian $SUITE chroot (base cached in $CACHE/debootstrap)"
  base=$CACHE/debootstrap/$SUITE-amd64-minbase.tar.gz
  if [ ! -s "$base" ]; then
    mkdir -p "$(dirname "$base")"
    fresh=$work/debootstrap
    echo "+ debootstrap --variant=minbase $SUITE (first run on this machine: downloads ~40 MB)"
    debootstrap --variant=minbase --include=systemd-standalone-sysusers,systemd-standalone-tmpfiles \
      "$SUITE" "$fresh" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
      { tail -n 30 "$work/debootstrap.log" >&2; echo "debootstrap failed" >&2; exit 1; }
    rm -rf "$fresh"/var/cache/apt/archives/*.deb "$fresh"/var/lib/apt/lists/*
    tar -C "$fresh" --numeric-owner -cf - . | gzip -1 >"$base.tmp"
    mv "$base.tmp" "$base"
    rm -rf "$fresh"
  fi
  ROOT=$REPO/target/deb-chroot
  rm -rf "$ROOT" && mkdir -p "$ROOT"
  tar -C "$ROOT" --numeric-owner -xzf "$base"
  in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
  # mode owner:group of a path in the chroot
  perm() { in_root stat -c '%a %U:%G' "$1" 2>/dev/null || echo missing; }
  cp "$DEB_AMD64" "$DEB_AMD64_UP" "$ROOT/tmp/"
  V1=/tmp/$(basename "$DEB_AMD64")
  V2=/tmp/$(basename "$DEB_AMD64_UP")

  step "install: apt-get install ./$(basename "$DEB_AMD64") (no /proc in the chroot yet)"
  if in_root apt-get install -y -o Dpkg::Use-Pty=0 "$V1" >"$work/install.log" 2>&1; then
    ok "installed"
  else
    cat "$work/install.log" >&2
    fail "apt-get install of the .deb failed"
  fi
  echo "  postinst said:" && sed -n '/^pinclaw gateway:/,$p' "$work/install.log" | sed 's/^/    | /'
  expect "dpkg status" "install ok installed $DEB_VERSION" "$(in_root dpkg-query -W -f='${Status} ${Version}' pinclaw)"
  expect "pinclaw --version" "pinclaw $VERSION" "$(in_root pinclaw --version)"
  expect "user pinclaw (home, shell)" "/var/lib/pinclaw /usr/sbin/nologin" \
    "$(in_root getent passwd pinclaw | awk -F: '{print $6, $7}')"
  uid=$(in_root id -u pinclaw)
  [ "$uid" -lt 1000 ] && ok "pinclaw is a system user (uid $uid)" || fail "pinclaw uid $uid is not a system uid"
  expect "groups of pinclaw" "gpio i2c pinclaw spi" "$(in_root id -nG pinclaw | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')"
  expect "/etc/pinclaw" "750 root:pinclaw" "$(perm /etc/pinclaw)"
  expect "/etc/pinclaw/pinclaw.toml" "640 root:pinclaw" "$(perm /etc/pinclaw/pinclaw.toml)"
  expect "/var/lib/pinclaw" "750 pinclaw:pinclaw" "$(perm /var/lib/pinclaw)"
  expect "/var/lib/pinclaw/gateway.token (before the first start)" "640 pinclaw:pinclaw" "$(perm /var/lib/pinclaw/gateway.token)"
  expect "enabled (multi-user.target.wants symlink)" /lib/systemd/system/pinclaw.service \
    "$(readlink "$ROOT/etc/systemd/system/multi-user.target.wants/pinclaw.service" || echo none)"
  if in_root runuser -u pinclaw -- pinclaw config check /etc/pinclaw/pinclaw.toml >"$work/check.log" 2>&1; then
    ok "as user pinclaw: $(tail -n 1 "$work/check.log")"
  else
    fail "pinclaw config check as user pinclaw: $(cat "$work/check.log")"
  fi

  # The first install ran without /proc (as in an image build; the postinst then does
  # by hand what systemd-tmpfiles would); everything from here on has it.
  mount -t proc proc "$ROOT/proc" && MOUNTED=1

  step "the gateway as the service runs it, and the CLI of a login user"
  in_root useradd -m -s /bin/bash alice
  in_root useradd -m -s /bin/bash bob
  in_root usermod -aG pinclaw alice
  # User pinclaw, UMask=0077 and the unit's environment (systemd itself is not there);
  # the port the kernel picks (the chroot shares this machine's loopback).
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin PINCLAW_STATE_DIR=/var/lib/pinclaw \
    setpriv --reuid=pinclaw --regid=pinclaw --init-groups -- /bin/sh -c \
    "umask 0077; exec pinclaw gateway --config /etc/pinclaw/pinclaw.toml --port 0" \
    >"$work/gw.out" 2>"$work/gw.err" &
  GW_PID=$!
  for ((i = 0; i < 300; i++)); do
    grep -qs '^pinclaw gateway ready at ' "$work/gw.out" && break
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.1
  done
  port=$(sed -n 's/^pinclaw gateway ready at ws:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/gw.out" | head -n 1)
  if [ -n "$port" ]; then
    ok "$(grep '^pinclaw gateway ready at ' "$work/gw.out")"
  else
    fail "the gateway did not get ready:"; cat "$work/gw.err" >&2
  fi
  expect "gateway.token after the first start (filled, mode kept)" "640 pinclaw:pinclaw" "$(perm /var/lib/pinclaw/gateway.token)"
  [ -s "$ROOT/var/lib/pinclaw/gateway.token" ] && ok "the token file is filled" || fail "the token file is empty"
  db_perm=$(in_root find /var/lib/pinclaw -type f ! -name gateway.token -printf '%m %u:%g %p\n')
  if [ -n "$db_perm" ] && ! grep -qv '^600 pinclaw:pinclaw ' <<<"$db_perm"; then
    ok "the rest of the state is private to the service: $(tr '\n' ';' <<<"$db_perm")"
  else
    fail "state files not 0600 pinclaw:pinclaw: $db_perm"
  fi
  # No flags: the CLI reads the service's config (its port, set here to the one the
  # kernel picked) and the service's token, not a stale one of alice's own.
  sed -i "s/^port = 18789\$/port = $port/" "$ROOT/etc/pinclaw/pinclaw.toml"
  in_root runuser -u alice -- sh -c 'mkdir -p ~/.local/share/pinclaw && echo stale-token-of-alice >~/.local/share/pinclaw/gateway.token'
  if out=$(in_root runuser -u alice -- env HOME=/home/alice pinclaw call health 2>&1) &&
    grep -q '"ok": *true' <<<"$out"; then
    ok "alice (group pinclaw): pinclaw call health answers ok (port and token of the service)"
  else
    fail "alice (group pinclaw): pinclaw call health: $out"
  fi
  sed -i "s/^port = $port\$/port = 18789/" "$ROOT/etc/pinclaw/pinclaw.toml"
  if out=$(in_root runuser -u bob -- env HOME=/home/bob pinclaw call health --port "$port" 2>&1); then
    fail "bob (not in group pinclaw) called the gateway: $out"
  else
    ok "bob (not in group pinclaw) is refused: $(tail -n 1 <<<"$out")"
  fi
  if out=$(in_root runuser -u bob -- cat /var/lib/pinclaw/gateway.token 2>&1); then
    fail "bob can read the token"
  else
    ok "bob cannot read the token ($out)"
  fi
  kill -TERM "$GW_PID"
  rc=0
  wait "$GW_PID" || rc=$?
  GW_PID=""
  expect "gateway exit status after SIGTERM" 0 "$rc"
  token_before=$(cat "$ROOT/var/lib/pinclaw/gateway.token")

  step "upgrade to $DEB_VERSION+test1 with an edited config"
  echo "# edited by the admin" >>"$ROOT/etc/pinclaw/pinclaw.toml"
  if in_root dpkg -i "$V2" >"$work/upgrade.log" 2>&1; then ok "upgraded"; else cat "$work/upgrade.log" >&2; fail "upgrade failed"; fi
  grep '^pinclaw: upgraded' "$work/upgrade.log" | sed 's/^/    | /' || true
  expect "dpkg status" "install ok installed $DEB_VERSION+test1" "$(in_root dpkg-query -W -f='${Status} ${Version}' pinclaw)"
  expect "the admin's edit kept" "# edited by the admin" "$(tail -n 1 "$ROOT/etc/pinclaw/pinclaw.toml")"
  expect "/etc/pinclaw/pinclaw.toml" "640 root:pinclaw" "$(perm /etc/pinclaw/pinclaw.toml)"
  if [ "$token_before" = "$(cat "$ROOT/var/lib/pinclaw/gateway.token")" ]; then
    ok "the token kept"
  else
    fail "the token changed on upgrade"
  fi
  expect "gateway.token" "640 pinclaw:pinclaw" "$(perm /var/lib/pinclaw/gateway.token)"
  [ -n "$(in_root find /var/lib/pinclaw -type f ! -name gateway.token)" ] && ok "the database kept" || fail "the database is gone"

  step "remove"
  if in_root dpkg -r pinclaw >"$work/remove.log" 2>&1; then ok "removed"; else cat "$work/remove.log" >&2; fail "remove failed"; fi
  expect "dpkg status" "deinstall ok config-files" "$(in_root dpkg-query -W -f='${Status}' pinclaw)"
  [ ! -e "$ROOT/usr/bin/pinclaw" ] && ok "/usr/bin/pinclaw gone" || fail "/usr/bin/pinclaw still there"
  [ -f "$ROOT/etc/pinclaw/pinclaw.toml" ] && ok "config kept" || fail "config gone on remove"
  [ -s "$ROOT/var/lib/pinclaw/gateway.token" ] && ok "state kept" || fail "state gone on remove"

  step "purge"
  if in_root dpkg -P pinclaw >"$work/purge.log" 2>&1; then ok "purged"; else cat "$work/purge.log" >&2; fail "purge failed"; fi
  expect "dpkg status" "" "$(in_root dpkg-query -W -f='${Status}' pinclaw 2>/dev/null | grep -v 'not-installed' || true)"
  [ ! -e "$ROOT/etc/pinclaw" ] && ok "/etc/pinclaw gone" || fail "/etc/pinclaw still there: $(ls -la "$ROOT/etc/pinclaw")"
  [ ! -e "$ROOT/var/lib/pinclaw" ] && ok "/var/lib/pinclaw gone" || fail "/var/lib/pinclaw still there"
  [ ! -e "$ROOT/etc/systemd/system/multi-user.target.wants/pinclaw.service" ] && ok "enablement symlink gone" ||
    fail "enablement symlink still there"
  in_root getent passwd pinclaw >/dev/null && ok "the pinclaw user stays (Debian keeps system users)" ||
    fail "the pinclaw user was removed"
fi

step "done"
if [ "$failures" -gt 0 ]; then
  echo "test-deb: $failures check(s) failed" >&2
  exit 1
fi
echo "test-deb: all checks passed"
