#!/usr/bin/env bash
# Builds rewind's .deb with cargo-deb, installs it as a package is installed (apt resolves its
# dependencies, postinst creates the user and /var/lib/rewind), starts the installed unit's
# own ExecStart line as its User= (no systemd in a container: the same command line, without
# the sandboxing systemd would add), checks that redis-cli PING answers and a write lands in
# /var/lib/rewind, stops it with SIGTERM, and removes the package (its data stays).
set -euo pipefail
trap 'echo "dist/check-deb.sh: failed at line $LINENO" >&2' ERR
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
port=17379
# A check for CI containers: it installs and removes the package, so it refuses to run where
# rewind is installed for real or systemd would start the unit.
if dpkg-query -W -f='${Status}' rewind 2>/dev/null | grep -q "install ok installed"; then
  echo "dist/check-deb.sh: rewind is installed here; refusing to replace and remove it" >&2
  exit 1
fi
if [ -d /run/systemd/system ]; then
  echo "dist/check-deb.sh: systemd runs here and would start the unit; run this in a container" >&2
  exit 1
fi

# Into a directory of its own, wherever CARGO_TARGET_DIR puts the build.
out=$(mktemp -d)
cargo deb --quiet --output "$out"
deb=$(ls "$out"/rewind_*.deb)
echo "built $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb --contents "$deb" | awk '{print $6}'
apt-get install -y -qq "$deb" >/dev/null

unit=$(dpkg -L rewind | grep '/systemd/system/rewind.service$')
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
user=$(sed -n 's/^User=//p' "$unit")
echo "unit $unit: User=$user ExecStart=$exec_start"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$unit"
  systemd-analyze security --offline=yes "$unit" 2>/dev/null | tail -1 || true
fi
test -f /etc/rewind/rewind.toml
test "$(stat -c '%U:%G %a' /etc/rewind/rewind.toml)" = "root:$user 640"
getent passwd "$user" >/dev/null
test "$(stat -c %U /var/lib/rewind)" = "$user"

log=$(mktemp)
# The environment overrides the installed /etc/rewind/rewind.toml's port (flags > env > file).
# shellcheck disable=SC2086 # ExecStart is split into words as systemd splits it
# setpriv execs (no parent left in between), so $! is the server and gets the SIGTERM.
setpriv --reuid="$user" --regid="$user" --init-groups \
  env REWIND_LISTEN="127.0.0.1:$port" $exec_start 2>"$log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  apt-get remove -y -qq rewind >/dev/null 2>&1 || true
  rm -f "$log"
  rm -rf "$out"
}
trap cleanup EXIT
for _ in $(seq 300); do
  grep -q "ready to accept connections" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "the packaged server exited"; exit 1; }
  sleep 0.1
done
grep -q "ready to accept connections" "$log" || { cat "$log"; echo "not ready after 30 s"; exit 1; }
test "$(redis-cli -p "$port" PING)" = "PONG"
test "$(redis-cli -p "$port" SET packaged yes)" = "OK"
test "$(redis-cli -p "$port" GET packaged)" = "yes"
info=$(redis-cli -p "$port" INFO server)
grep -q "config_file:/etc/rewind/rewind.toml" <<<"$info"
segments=$(find /var/lib/rewind -name '*.seg' -user "$user")
test -n "$segments"
kill -TERM "$pid"
wait "$pid"
grep -q "shutdown complete" "$log"
trap - EXIT
apt-get remove -y -qq rewind >/dev/null
test ! -e /usr/bin/rewind
test -d /var/lib/rewind   # removing the package keeps the tables
rm -f "$log"
rm -rf "$out"
echo "the .deb installs, its unit's command line serves as $user, and it removes cleanly"
