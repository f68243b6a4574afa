#!/bin/bash
# keepalive-counts.sh: what a proxy's threads do per keep-alive request, counted by the
# kernel rather than timed, so the figures hold on a busy machine too: system calls by
# kind (recvfrom, recvfrom that said EAGAIN, sendto, epoll_wait, eventfd/pipe writes,
# futex, epoll_ctl), context switches (all, and the voluntary ones: a thread that
# parked) and CPU time. The load is the l4bench keep-alive scenario's (wrk, 2 threads,
# 64 persistent connections, a 100-byte file from two nginx backends), on loopback only.
#
#   benches/keepalive-counts.sh [-r RUNS] [-d SECONDS] TARGET...
#     TARGET: `haproxy` (TCP mode, 2 threads, as l4bench configures it), or a directory
#     holding a uvs and a uvsadm build (e.g. target/release); targets are interleaved
#     within each run. Needs wrk, nginx, perf (syscalls:* tracepoints), haproxy if named.
#   e.g. benches/keepalive-counts.sh -r 3 haproxy /work/ab19-old target/release
#
# One line per target and run: requests/s and p99 (timings: trust them only on a quiet
# machine), then per request: cpu_us (the proxy's CPU), cs and vol_cs (context switches,
# all and voluntary), epoll (epoll_wait calls), recvfrom, eagain (recvfrom that returned
# EAGAIN), sendto, write, futex, ctl (epoll_ctl). Ports 28180-28182, work files in a
# temporary directory; every process it starts is stopped on exit.
set -u
runs=1 secs=5
while getopts r:d: o; do
    case $o in
    r) runs=$OPTARG ;;
    d) secs=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { sed -n 2,20p "$0"; exit 2; }
lb=28180 be1=28181 be2=28182
w=$(mktemp -d -t ka-counts.XXXXXX)
chmod 755 "$w"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$w"
}
trap cleanup EXIT INT TERM

# spawn: run in a session of its own (killed as a group), at most 30 minutes
spawn() { setsid timeout 1800 "$@" </dev/null >>"$w/log" 2>&1 & pids+=($!); }
listening() { for _ in $(seq 100); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.1; done; return 1; }

mkdir -p "$w/html" "$w/tmp"
chmod 755 "$w/html"
printf '%0100d' 0 | tr 0 a >"$w/html/small.txt"
chmod 644 "$w/html/small.txt"
cat >"$w/nginx.conf" <<EOF
worker_processes 2;
pid $w/nginx.pid;
error_log $w/nginx.error.log warn;
events { worker_connections 4096; }
http {
    access_log off; keepalive_timeout 60s; keepalive_requests 1000000;
    open_file_cache max=64; sendfile on; default_type text/plain;
    client_body_temp_path $w/tmp; proxy_temp_path $w/tmp; fastcgi_temp_path $w/tmp;
    uwsgi_temp_path $w/tmp; scgi_temp_path $w/tmp;
    server { listen 127.0.0.1:$be1 reuseport; listen 127.0.0.1:$be2 reuseport; root $w/html; }
}
EOF
spawn nginx -p "$w" -e "$w/nginx.error.log" -c "$w/nginx.conf" -g 'daemon off;'
listening $be1 && listening $be2 || { echo "backends did not start (see $w/log)"; exit 1; }

cat >"$w/haproxy.cfg" <<EOF
global
    nbthread 2
    tune.bufsize 16384
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$lb
    default_backend be
backend be
    balance roundrobin
    server s1 127.0.0.1:$be1
    server s2 127.0.0.1:$be2
EOF

# start TARGET: the proxy on $lb; sets proxy (its pid) and group (its session)
start() {
    if [ "$1" = haproxy ]; then
        spawn haproxy -db -f "$w/haproxy.cfg"
        group=${pids[-1]}
        listening $lb || return 1
        proxy=$(pgrep -s "$group" -x haproxy)
    else
        local sock=$w/uvs.sock
        rm -f "$sock"
        spawn "$1/uvs" run --mode userspace --metrics off --socket "$sock"
        group=${pids[-1]}
        for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
        UVS_SOCKET=$sock "$1/uvsadm" -A -t 127.0.0.1:$lb -s rr &&
            UVS_SOCKET=$sock "$1/uvsadm" -a -t 127.0.0.1:$lb -r 127.0.0.1:$be1 -m &&
            UVS_SOCKET=$sock "$1/uvsadm" -a -t 127.0.0.1:$lb -r 127.0.0.1:$be2 -m || return 1
        proxy=$(pgrep -s "$group" -x uvs)
    fi
    [ -n "$proxy" ]
}
stop() {
    kill -TERM -- "-$group" 2>/dev/null
    for _ in $(seq 50); do ss -Hltn "sport = :$lb" | grep -q . || break; sleep 0.1; done
}

url=http://127.0.0.1:$lb/small.txt
for run in $(seq "$runs"); do
    for target in "$@"; do
        start "$target" || { echo "$target: did not start (see $w/log)"; stop; continue; }
        timeout 30 wrk -t2 -c64 -d1s "$url" >/dev/null 2>&1
        perf stat -x, -o "$w/perf" -p "$proxy" \
            -e context-switches,task-clock \
            -e sched:sched_switch --filter 'prev_state == 0' \
            -e syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom \
            -e syscalls:sys_exit_recvfrom --filter 'ret == -11' \
            -e syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_ctl \
            -- timeout $((secs + 30)) wrk -t2 -c64 -d"${secs}s" --latency "$url" >"$w/wrk" 2>&1
        stop
        python3 - "$target" "$run" "$w/wrk" "$w/perf" <<'EOF'
import re, sys
target, run, wrk, perf = sys.argv[1:5]
w = open(wrk).read()
reqs = int(re.search(r'(\d+) requests in', w).group(1))
rps = float(re.search(r'Requests/sec:\s+([\d.]+)', w).group(1))
m = re.search(r'\s99%\s+([\d.]+)(us|ms|s)\b', w)
p99 = float(m.group(1)) * {'us': 0.001, 'ms': 1, 's': 1000}[m.group(2)]
c = [float(f[0]) for f in (l.strip().split(',') for l in open(perf))
     if len(f) > 3 and re.match(r'^[\d.]+$', f[0])]
cs, ms, preempted, ep, rf, eagain, st, wr, fx, ctl = c
r = reqs
print(f"{target} run={run} rps={rps:.0f} p99_ms={p99:.2f} cpu_us={ms * 1000 / r:.2f} "
      f"cs={cs / r:.3f} vol_cs={(cs - preempted) / r:.3f} epoll={ep / r:.3f} "
      f"recvfrom={rf / r:.3f} eagain={eagain / r:.4f} sendto={st / r:.3f} "
      f"write={wr / r:.4f} futex={fx / r:.4f} ctl={ctl / r:.4f}")
EOF
    done
done
