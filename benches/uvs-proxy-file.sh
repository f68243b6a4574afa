#!/bin/bash
# PROXY_CMD for ../shared/bench/l4bench.sh, as uvs-proxy.sh but with the service in a
# configuration file, for the keys only the file has: $UVS_SERVICE_KEYS (TOML lines,
# e.g. 'source_ports = "20000-29999"') go into the service's table. Used to measure
# `source` and `source_ports` (README "Source addresses, ports and TIME_WAIT"):
#   UVS_SERVICE_KEYS='source = ["127.0.0.1"]' PROXY_CMD=$PWD/benches/uvs-proxy-file.sh \
#     PROXY_NAME=uvs-source ../shared/bench/l4bench.sh -s short custom
set -u
bin=${UVS_BIN:-$PWD/target/release}
sock=$(mktemp -u -t uvs-bench.XXXXXX.sock)
conf=$(mktemp -t uvs-bench.XXXXXX.toml)
proto=tcp
[ "$L4B_PROTO" = udp ] && proto=udp
{
    printf '[[service]]\n%s = "%s"\nscheduler = "rr"\n%s\n' "$proto" "$L4B_LISTEN" "${UVS_SERVICE_KEYS:-}"
    for b in ${L4B_BACKENDS//,/ }; do printf '\n[[service.server]]\naddress = "%s"\n' "$b"; done
} >"$conf"
# shellcheck disable=SC2086 # UVS_ARGS is a list of words
"$bin/uvs" run --mode userspace --metrics off --socket "$sock" -c "$conf" ${UVS_ARGS:-} &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; rm -f "$sock" "$conf"; exit 0' TERM INT
wait $pid
