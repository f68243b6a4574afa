#!/bin/bash
# Runs l4bench's short scenario against uvs (benches/uvs-proxy-file.sh, with
# $UVS_SERVICE_KEYS) and, while it runs, counts which legs hold TIME_WAITs (`ss`,
# sampled every second: the most seen of each) and uvs's system calls per accepted
# connection (`perf stat -e 'syscalls:sys_enter_*'` over uvs's whole life, divided by
# its accept4 calls). README "Source addresses, ports and TIME_WAIT" has its output.
#   UVS_BIN=$PWD/target/release UVS_SERVICE_KEYS='source_ports = "20000-29999"' \
#     benches/time-wait-legs.sh OUT_DIR
# Needs root (perf tracepoints), and the tools l4bench needs. Ports: l4bench's
# defaults (VIP 18080, backends 18081 and 18082).
set -u
out=${1:?an output directory}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
bench=${L4BENCH:-$here/../../shared/bench/l4bench.sh}
bin=${UVS_BIN:-$PWD/target/release}
export UVS_BIN=$bin UVS_SERVICE_KEYS=${UVS_SERVICE_KEYS:-}
PROXY_CMD=$here/uvs-proxy-file.sh PROXY_NAME=uvs "$bench" -s short -o "$out/l4bench.txt" custom \
    >"$out/l4bench.out" 2>"$out/l4bench.err" &
bench_pid=$!
# uvs, once the bench has started it (found by its binary's path: read only).
pid=
for _ in $(seq 600); do
    pid=$(pgrep -n -f "^$bin/uvs run") && break
    sleep 0.1
done
[ -n "$pid" ] || { echo "uvs did not start" >&2; exit 1; }
perf stat -x, -e 'syscalls:sys_enter_*' -p "$pid" -o "$out/perf.csv" &
perf_pid=$!
# The most TIME_WAITs seen at once on each side of each leg.
: >"$out/ss.txt"
while kill -0 "$pid" 2>/dev/null; do
    ss -tanH state time-wait | awk '
        { split($3, l, ":"); split($4, p, ":"); lp = l[length(l)]; pp = p[length(p)] }
        lp == 18080 { cu++ } pp == 18080 { cw++ }
        pp == 18081 || pp == 18082 { su++ } lp == 18081 || lp == 18082 { sn++ }
        END { printf "%d %d %d %d\n", cu, cw, su, sn }' >>"$out/ss.txt"
    sleep 1
done
wait "$perf_pid" "$bench_pid"
sort -n -k1,1 "$out/ss.txt" | tail -1 | awk '{print "client leg, uvs side (local :18080):  " $1}' >"$out/summary.txt"
sort -n -k2,2 "$out/ss.txt" | tail -1 | awk '{print "client leg, wrk side (peer :18080):   " $2}' >>"$out/summary.txt"
sort -n -k3,3 "$out/ss.txt" | tail -1 | awk '{print "server leg, uvs side (peer backend):  " $3}' >>"$out/summary.txt"
sort -n -k4,4 "$out/ss.txt" | tail -1 | awk '{print "server leg, nginx side (local backend): " $4}' >>"$out/summary.txt"
per_conn() {
    awk -F, '$3 ~ /sys_enter_/ && $1 ~ /^[0-9]+$/ { n[$3] = $1; total += $1 }
        END {
            a = n["syscalls:sys_enter_accept4"]
            if (a == 0) { print "no accept4 counted"; exit }
            if (mode == "head") { printf "accept4 %d; system calls per connection %.2f\n", a, total / a; exit }
            for (e in n) if (n[e] / a >= 0.05) printf "  %-40s %.2f\n", e, n[e] / a
        }' mode="$1" "$out/perf.csv"
}
per_conn head >>"$out/summary.txt"
per_conn each | sort -k2 -n -r >>"$out/summary.txt"
grep -h short_conn "$out/l4bench.txt" >>"$out/summary.txt"
cat "$out/summary.txt"
