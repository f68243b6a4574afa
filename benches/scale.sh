#!/bin/bash
# Cost at scale: start-up, `uvsadm -L -n`, `uvsadm -S -n`, a reload that changes one
# weight, and a scrape of /metrics, for a table of N services x S real servers read
# from a configuration file, with the wall time of each and the daemon's resident size
# (VmRSS after, VmHWM the peak during it, reset before each step) and CPU time. No traffic is sent:
# the real servers are 127.x addresses nobody listens on, and no health check is
# configured.
#
#   benches/scale.sh [N [S [KIND]]]      KIND: tcp (each service listens on its own
#                                        127.x VIP, one socket per worker) or fwmark
#                                        (no listening socket: the table's cost alone)
#   for n in 1000 10000 100000; do benches/scale.sh $n 4 fwmark; done
#
# Environment: UVS_BIN (target/release), UVS_THREADS (--threads, default the
# daemon's), SCALE_DIR (a temporary directory). Runs the daemon with --mode userspace
# under an open-files limit that fits N x workers listening sockets, at most the hard
# limit (tcp at 10 000 services needs UVS_THREADS=1 under a hard limit of 20 000). Prints one table row per step, in README's format.
set -eu
n=${1:-1000}
s=${2:-4}
kind=${3:-tcp}
bin=${UVS_BIN:-$PWD/target/release}
dir=${SCALE_DIR:-$(mktemp -d -t uvs-scale.XXXXXX)}
sock=$dir/uvs.sock
conf=$dir/uvs.toml
port=$((20000 + RANDOM % 20000))
export UVS_SOCKET=$sock

# The file: service i on 127.(1 + i/62500).(i/250 % 250).(i%250 + 1):8080 (tcp) or
# fwmark i+1; its servers on 127.(200 + k/65536).x.y:80.
python3 - "$n" "$s" "$kind" > "$conf" <<'EOF'
import sys
n, s, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
out = []
for i in range(n):
    if kind == "tcp":
        out.append(f'[[service]]\ntcp = "127.{1 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}:8080"\nscheduler = "wrr"\n')
    else:
        out.append(f'[[service]]\nfwmark = {i + 1}\nscheduler = "wrr"\n')
    for j in range(s):
        k = i * s + j
        out.append(f'[[service.server]]\naddress = "127.{200 + (k >> 16)}.{k >> 8 & 255}.{k & 255}:80"\nweight = 1\n')
print("\n".join(out))
EOF

now() { date +%s.%N; }
field() { awk -v f="$1:" '$1 == f { printf "%.0f", $2 / 1024 }' "/proc/$pid/status"; }
reset_peak() { echo 5 > "/proc/$pid/clear_refs"; }
# The daemon's CPU time so far (user + system), in seconds: less noisy than wall time
# on a shared machine.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$pid/stat"; }
row() { # what seconds cpu-before
    printf '| %s | %s x %s %s | %.2f s | %.2f s | %s MiB | %s MiB |\n' "$1" "$n" "$s" "$kind" "$2" \
        "$(echo "$(cpu) - $3" | bc)" "$(field VmRSS)" "$(field VmHWM)"
}
# "reloads N, refused M" of `uvs status`: either moves when a reload is done.
reloads() { "$bin/uvs" status --socket "$sock" 2>/dev/null | grep -o 'reloads [0-9]*, refused [0-9]*'; }

limit=$((n * 4 + 4096))
hard=$(ulimit -Hn)
[ "$hard" != unlimited ] && [ "$limit" -gt "$hard" ] && limit=$hard
t0=$(now)
UVS_LOG=${UVS_LOG:-info} prlimit --nofile=$limit:$limit -- "$bin/uvs" run -c "$conf" --socket "$sock" \
    --mode userspace --metrics "127.0.0.1:$port" ${UVS_THREADS:+--threads $UVS_THREADS} \
    2> "$dir/log" &
pid=$!
stop() {
    kill -TERM $pid 2> /dev/null
    for _ in $(seq 300); do kill -0 $pid 2> /dev/null || break; sleep 0.1; done
    kill -KILL $pid 2> /dev/null
    wait $pid 2> /dev/null
    rm -rf "$dir"
}
trap stop EXIT
until "$bin/uvs" status --socket "$sock" > /dev/null 2>&1; do
    kill -0 $pid 2> /dev/null || { cat "$dir/log"; exit 1; }
    sleep 0.05
done
if [ "$kind" = tcp ]; then
    # Ready once every VIP listens: N x workers listening sockets.
    until [ "$(ss -Hltn "sport = :8080" | wc -l)" -ge "$n" ]; do sleep 0.05; done
fi
row start-up "$(echo "$(now) - $t0" | bc)" 0

for what in "-L -n" "-S -n"; do
    reset_peak
    t0=$(now) c0=$(cpu)
    # shellcheck disable=SC2086 # $what is two words
    "$bin/uvsadm" $what > "$dir/out"
    row "uvsadm $what ($(wc -l < "$dir/out") lines)" "$(echo "$(now) - $t0" | bc)" "$c0"
done

# One weight changed: the last service's first server, 1 -> 2.
before=$(reloads)
python3 - "$conf" <<'EOF'
import sys
p = sys.argv[1]
t = open(p).read()
i = t.rindex("weight = 1")
open(p, "w").write(t[:i] + "weight = 2" + t[i + len("weight = 1"):])
EOF
reset_peak
t0=$(now) c0=$(cpu)
kill -HUP $pid
until [ "$(reloads)" != "$before" ]; do sleep 0.02; done
case $(reloads) in
*"refused ${before##* }") what="reload, one weight changed" ;;
*) what="reload REFUSED (see $dir/log)" ;;
esac
row "$what" "$(echo "$(now) - $t0" | bc)" "$c0"
grep 'configuration reloaded' "$dir/log" | tail -1 | sed 's/.*INFO /  /' >&2 || true

reset_peak
t0=$(now) c0=$(cpu)
bytes=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$port/metrics")
row "scrape ($((bytes / 1048576)) MiB)" "$(echo "$(now) - $t0" | bc)" "$c0"
