#!/usr/bin/env bash
# Makes sure a NATS server with JetStream answers at 127.0.0.1:4222 (the cluster-mode tests
# use it; one test also starts a `nats-server` of its own): starts it if the Debian package
# is installed but the server is down, installs the package if it is absent (root only), and
# fails with a clear message otherwise.
set -uo pipefail
host=127.0.0.1 port=4222
store=/var/lib/nats-server

# the server's INFO line says whether JetStream is on
info() {
  (exec 3<>"/dev/tcp/$host/$port" && timeout 2 head -n 1 <&3) 2>/dev/null
}
ready() { info | grep -q '"jetstream":true'; }

ready && command -v nats-server >/dev/null 2>&1 && exit 0

if ! command -v nats-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-nats: installing nats-server from Debian's packages" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server) >&2 || true
  fi
fi
command -v nats-server >/dev/null 2>&1 || {
  echo "ensure-nats: nats-server is not installed (Debian package nats-server); the cluster tests need it" >&2
  exit 1
}
ready && exit 0
if [ -n "$(info)" ]; then
  echo "ensure-nats: a NATS server answers on $host:$port without JetStream; restart it with -js" >&2
  exit 1
fi
echo "ensure-nats: starting nats-server -js on $host:$port" >&2
mkdir -p "$store"
if command -v start-stop-daemon >/dev/null 2>&1; then
  start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a "$host" -p "$port" -js -sd "$store" -l /var/log/nats-server.log
else
  nohup nats-server -a "$host" -p "$port" -js -sd "$store" >/var/log/nats-server.log 2>&1 &
fi
for _ in $(seq 1 30); do ready && exit 0; sleep 0.5; done
echo "ensure-nats: nats-server did not answer on $host:$port with JetStream; see /var/log/nats-server.log" >&2
exit 1
