#!/usr/bin/env bash
# dnsperf against farm-dns and against NSD, in the same run, on loopback only:
# a release farm of three on 127.77.0.1-3, farm-dns on 127.77.0.250:5353, and
# NSD serving the same three A records from a static zone on 127.77.0.251:5353.
# Prints both queries/s figures and their ratio; writes bench/results/dns-*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
SECONDS_EACH=${SECONDS_EACH:-10}
CLIENTS=${CLIENTS:-10}

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need dnsperf dnsperf
need nsd nsd

cargo build --release --bins -p rttp-server -p farm-dns >/dev/null
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

(umask 077 && head -c 32 /dev/urandom | base64 > "$work/secret")
for i in 1 2 3; do
  seed=(); [ "$i" -gt 1 ] && seed=(--seed 127.77.0.1:7100)
  "$BIN/rttp-server" --id "s$i" --listen "127.77.0.$i:7000" --secret-file "$work/secret" "${seed[@]}" 2>"$work/s$i.log" &
  pids+=($!)
done
sleep 1
# Response rate limiting off on both sides (NSD: rrl-ratelimit: 0): dnsperf
# asks from one address, and the throughput is what is measured.
"$BIN/farm-dns" --listen 127.77.0.250:5353 --rrl-rate 0 --farm 127.77.0.1:7000 --farm 127.77.0.2:7000 2>"$work/dns.log" &
pids+=($!)

cat > "$work/farm.test.zone" <<ZONE
\$TTL 1
farm.test.  IN SOA ns.farm.test. hostmaster.farm.test. 1 3600 600 86400 1
farm.test.  IN NS  ns.farm.test.
ns          IN A   127.77.0.251
chat        IN A   127.77.0.1
chat        IN A   127.77.0.2
chat        IN A   127.77.0.3
ZONE
cat > "$work/nsd.conf" <<CONF
server:
    ip-address: 127.77.0.251@5353
    username: ""
    chroot: ""
    zonesdir: "$work"
    database: ""
    zonelistfile: "$work/zone.list"
    xfrdfile: "$work/xfrd.state"
    pidfile: "$work/nsd.pid"
    logfile: "$work/nsd.log"
    round-robin: yes
    rrl-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: farm.test
    zonefile: farm.test.zone
CONF
nsd -d -c "$work/nsd.conf" &
pids+=($!)

for ip in 127.77.0.250 127.77.0.251; do
  for _ in $(seq 1 50); do
    [ "$(dig @$ip -p 5353 +short +time=1 +tries=1 chat.farm.test A | wc -l)" = 3 ] && break
    sleep 0.2
  done
done
echo "chat.farm.test A" > "$work/queries"
run() { dnsperf -s "$1" -p 5353 -d "$work/queries" -c "$CLIENTS" -l "$SECONDS_EACH" 2>&1 | awk '/Queries per second/ {print $4}'; }
farm=$(run 127.77.0.250)
nsd_qps=$(run 127.77.0.251)
ratio=$(awk -v a="$farm" -v b="$nsd_qps" 'BEGIN { printf "%.2f", a / b }')
printf '%-10s %12s queries/s\n' farm-dns "$farm" NSD "$nsd_qps"
echo "ratio farm-dns/NSD: $ratio (goal >= 1.0; dnsperf -c $CLIENTS -l $SECONDS_EACH, same machine, same run)"
mkdir -p bench/results
printf '{"bench":"dns","dnsperf_clients":%s,"seconds":%s,"farm_dns_qps":%s,"nsd_qps":%s,"ratio":%s}\n' \
  "$CLIENTS" "$SECONDS_EACH" "$farm" "$nsd_qps" "$ratio" > "bench/results/dns-$(date +%Y%m%d-%H%M%S).json"
