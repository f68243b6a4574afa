#!/bin/bash
# PROXY_CMD for ../shared/bench/l4bench.sh, like its bench/uvs-proxy.sh but passing
# $UVS_ARGS to `uvs run` (e.g. UVS_ARGS='--forwarding copy'). Runs uvs in the
# foreground with one round-robin service on $L4B_LISTEN over $L4B_BACKENDS. With
# UVS_SYNC=master it also runs a sync master on lo (port $UVS_SYNC_PORT, default 18848),
# so its cost shows beside a run without one.
#   PROXY_CMD=$PWD/benches/uvs-proxy.sh PROXY_NAME=uvs ../shared/bench/l4bench.sh direct haproxy custom
set -u
bin=${UVS_BIN:-$PWD/target/release}
sock=$(mktemp -u -t uvs-bench.XXXXXX.sock)
# shellcheck disable=SC2086 # UVS_ARGS is a list of words
"$bin/uvs" run --mode userspace --metrics off --socket "$sock" ${UVS_ARGS:-} &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; rm -f "$sock"; exit 0' TERM INT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
flag=-t
[ "$L4B_PROTO" = udp ] && flag=-u
export UVS_SOCKET=$sock
"$bin/uvsadm" -A $flag "$L4B_LISTEN" -s rr
for b in ${L4B_BACKENDS//,/ }; do "$bin/uvsadm" -a $flag "$L4B_LISTEN" -r "$b" -m; done
if [ -n "${UVS_SYNC:-}" ]; then
    "$bin/uvsadm" --start-daemon "$UVS_SYNC" --mcast-interface lo --mcast-port "${UVS_SYNC_PORT:-18848}"
fi
wait $pid
