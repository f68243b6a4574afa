#!/bin/bash
# Runs inside shared/ipvs-vm (a Debian kernel with IPVS): uvs in auto mode (which
# picks the kernel) with a configuration file; traffic from a client namespace to
# masqueraded real servers in two other namespaces, and over loopback, follows wrr 3:1;
# after the start, traffic, a reload, a health check, a uvsadm change and a change
# behind uvs's back, the kernel's table as ipvsadm lists, saves, counts (--stats,
# --rate) and lists connections (-L -c) must be what uvsadm shows, the kernel's whole
# table: a service uvs did not make is listed by uvsadm too, and stays untouched; a
# clean stop leaves only that one. The sync daemons:
# uvsadm's --start-daemon, -L --daemon and --stop-daemon answer byte for byte as
# ipvsadm did (tests/golden/daemon_*, put in /opt/uvs/golden by run.sh) and as it does
# here, refusals included; a daemon someone else starts is listed; the file's [sync]
# starts the kernel's daemon, a stop behind uvs's back is repaired, and a clean stop
# stops it. A service someone else made at one of the file's keys is listed as the
# kernel has it, and uvsadm's commands on others' services are refused, the kernel
# untouched. A [sync] daemon the kernel refuses is shown down with its reason (uvs
# status, metrics), said once in the log, and uvsadm --start-daemon of that role goes
# to the kernel. After a stop with cleanstop = false, a restart with another [sync]
# replaces the daemon the earlier uvs left; a daemon of a role [sync] does not name
# stays. A [sync] daemon whose interface is missing waits, shown down with the
# reason (which the mirror's passes leave alone), until the interface comes.
set -u
cd /root
fail() { echo "FAIL: $*"; echo "--- uvs log"; cat uvs.log; exit 1; }

ipvsadm -A -t 127.0.0.99:99 -s rr   # someone else's
# Someone else's, at a key the file names too: the mirror leaves it alone.
ipvsadm -A -t 127.0.0.98:98 -s wlc
ipvsadm -a -t 127.0.0.98:98 -r 127.0.0.1:7000 -m -w 4
others=$(ipvsadm -S -n)

# A client and two real servers in network namespaces of their own, routed through
# this (the director's) namespace; the VIP is on lo. Inside the VM: nothing leaves it.
sysctl -qw net.ipv4.ip_forward=1
for ns in client rs1 rs2; do ip netns add $ns; done
ip link add c0 type veth peer name c1
ip link set c1 netns client
ip addr add 192.0.2.1/24 dev c0
ip link set c0 up
ip -n client addr add 192.0.2.2/24 dev c1
ip -n client link set c1 up
ip -n client route add default via 192.0.2.1
for i in 1 2; do
    a=$(( (i - 1) * 4 + 1 )); b=$((a + 1))
    ip link add r${i}0 type veth peer name r${i}1
    ip link set r${i}1 netns rs$i
    ip addr add 198.51.100.$a/30 dev r${i}0
    ip link set r${i}0 up
    ip -n rs$i addr add 198.51.100.$b/30 dev r${i}1
    ip -n rs$i link set r${i}1 up
    ip -n rs$i route add default via 198.51.100.$a
    mkdir -p /ns$i && echo "server rs$i" > /ns$i/index.html
    ip netns exec rs$i busybox httpd -f -p 198.51.100.$b:80 -h /ns$i &
    eval "httpd_rs$i=\$!"
done
ip addr add 203.0.113.10/32 dev lo

# N requests from the client namespace to the VIP, tallied as "6xrs1 2xrs2 ".
ask_from_client() {
    for _ in $(seq "$1"); do
        ip netns exec client bash -c 'exec 3<>/dev/tcp/203.0.113.10/80; printf "GET / HTTP/1.0\r\n\r\n" >&3; tail -1 <&3'
    done | sort | uniq -c | awk '{print $1 "x" $3}' | tr '\n' ' '
}

write_config() {
cat > uvs.toml.new <<EOF
[global]
mode = "auto"
metrics = "127.0.0.1:9280"

[timeouts]
tcp = "10m"

[[service]]
tcp = "203.0.113.10:80"
scheduler = "wrr"
[service.check]
type = "connect"
interval = "1s"
timeout = "1s"
[[service.server]]
address = "198.51.100.2:80"
weight = 3
[[service.server]]
address = "198.51.100.6:80"

[[service]]
tcp = "127.0.0.98:98"
scheduler = "rr"
[[service.server]]
address = "127.0.0.1:7001"

[[service]]
tcp = "127.0.0.10:80"
scheduler = "wrr"
[[service.server]]
address = "127.0.0.1:8080"
weight = $1
[[service.server]]
address = "127.0.0.1:$2"
$3
EOF
mv uvs.toml.new uvs.toml
}
UDP_AND_FWM='
[[service]]
udp = "127.0.0.10:53"
scheduler = "rr"
persistent = 600
[[service.server]]
address = "127.0.0.1:5353"

[[service]]
fwmark = 5
scheduler = "sh"
flags = ["sh-port"]
[[service.server]]
address = "127.0.0.2"
forward = "gate"
'
SYNC9='
[sync]
role = "master"
interface = "lo"
syncid = 9
'
CHECKED=$SYNC9'
[[service]]
tcp = "127.0.0.11:80"
scheduler = "rr"
quiescent = false
[[service.server]]
address = "127.0.0.1:9001"
[service.server.check]
type = "on"
[[service.server]]
address = "127.0.0.1:9002"
[service.server.check]
type = "off"
'
write_config 3 8081 "$UDP_AND_FWM"
/opt/uvs/uvs run --socket /root/uvs.sock -c uvs.toml 2> uvs.log &
pid=$!
for _ in $(seq 100); do [ -S /root/uvs.sock ] && break; sleep 0.1; done
U="/opt/uvs/uvsadm --socket /root/uvs.sock"

compare() {
    for _ in $(seq 30); do
        ipvsadm -L -n > k.txt
        $U -L -n > u.txt
        ipvsadm -S -n > ks.txt
        $U -S -n > us.txt
        cmp -s k.txt u.txt && cmp -s ks.txt us.txt && { echo "ok $1"; return; }
        sleep 0.2
    done
    echo "--- ipvsadm -L -n"; cat k.txt; echo "--- uvsadm -L -n"; cat u.txt
    echo "--- ipvsadm -S -n"; cat ks.txt; echo "--- uvsadm -S -n"; cat us.txt
    fail "$1: the kernel's table is not uvs's"
}

grep -q "mode auto: kernel" uvs.log || fail "mode auto did not choose the kernel"
/opt/uvs/uvs status --socket /root/uvs.sock > status.txt
head -1 status.txt | grep -q "(kernel mode" || fail "uvs status does not say kernel mode"
grep -qx "mode auto: kernel (the kernel has IPVS and uvs may change it)" status.txt || fail "uvs status does not say why"
compare "start"
ipvsadm -L --timeout | grep -q 'Timeout (tcp tcpfin udp): 600 120 300' || fail "timeouts"
grep -q '127.0.0.99:99' u.txt || fail "uvsadm -L does not list the service uvs did not make"
[ "$($U -L -n -t 127.0.0.99:99)" = "$(ipvsadm -L -n -t 127.0.0.99:99)" ] || fail "uvsadm -L -t of someone else's service"
[ "$($U -L -n -t 127.0.0.98:98)" = "$(ipvsadm -L -n -t 127.0.0.98:98)" ] || fail "uvsadm -L -t of someone else's service at the file's key"
grep -q 'already there; left alone' uvs.log || fail "the service at the file's key is not said to be someone else's"

# uvsadm's commands on others' services: refused, saying whose it is; the kernel and
# the listing as they were.
refused_as_others() {
    local vip=$1; shift
    $U "$@" > uo.txt 2> ue.txt && fail "uvsadm $* was taken"
    grep -qx "virtual service -t $vip in the kernel is not uvs's (uvs did not create it, and leaves it alone): change it with ipvsadm" ue.txt ||
        fail "uvsadm $*: $(cat ue.txt)"
}
for vip in 127.0.0.98:98 127.0.0.99:99; do
    refused_as_others $vip -A -t $vip -s rr
    refused_as_others $vip -E -t $vip -s lc
    refused_as_others $vip -D -t $vip
    refused_as_others $vip -a -t $vip -r 127.0.0.1:7002 -m
    refused_as_others $vip -e -t $vip -r 127.0.0.1:7000 -m -w 9
    refused_as_others $vip -d -t $vip -r 127.0.0.1:7000
    refused_as_others $vip -Z -t $vip
done
$U -C || fail "uvsadm -C"
kill -HUP $pid   # the file's services back
[ "$(ipvsadm -S -n | grep -e 127.0.0.98 -e 127.0.0.99)" = "$others" ] || fail "others' services changed: $(ipvsadm -S -n)"
compare "uvsadm's commands on others' services"

# The sync daemons from uvsadm: what ipvsadm 1.31 printed for the same commands
# (golden), and what ipvsadm says here for the refusals and listings.
as_golden() {
    local name=$1; shift
    $U "$@" > go.txt 2> ge.txt; local rc=$?
    cmp -s go.txt /opt/uvs/golden/$name.out && cmp -s ge.txt /opt/uvs/golden/$name.err &&
        [ "$rc" = "$(cat /opt/uvs/golden/$name.rc)" ] ||
        { echo "--- uvsadm $* (rc $rc)"; cat go.txt ge.txt; fail "uvsadm $* is not ipvsadm's $name"; }
}
as_ipvsadm() {
    $U "$@" > uo.txt 2> ue.txt; local urc=$?
    ipvsadm "$@" > ko.txt 2> ke.txt; local krc=$?
    cmp -s uo.txt ko.txt && cmp -s ue.txt ke.txt && [ "$urc" = "$krc" ] ||
        { echo "--- ipvsadm $* (rc $krc)"; cat ko.txt ke.txt; echo "--- uvsadm (rc $urc)"; cat uo.txt ue.txt; fail "uvsadm $* differs from ipvsadm"; }
}
as_golden daemon_start --start-daemon master --mcast-interface lo --syncid 7
as_golden daemon_L_n_daemon -L -n --daemon
as_golden daemon_L_daemon -L --daemon
as_ipvsadm -L -n --daemon
as_ipvsadm --start-daemon master --mcast-interface lo --syncid 7
grep -qx "Daemon has already run" ue.txt || fail "a second start: $(cat ue.txt)"
as_ipvsadm --start-daemon backup --mcast-interface uvs-nosuch0
grep -qx "No such device" ue.txt || fail "an unknown interface: $(cat ue.txt)"
as_golden daemon_stop --stop-daemon master
as_golden daemon_after_stop_L_n_daemon -L -n --daemon
as_ipvsadm --stop-daemon master
grep -qx "No daemon is running" ue.txt || fail "a stop of none: $(cat ue.txt)"
ipvsadm --start-daemon backup --mcast-interface lo --syncid 5   # someone else's
as_ipvsadm -L --daemon
grep -q "^backup sync daemon (mcast=lo, syncid=5" uo.txt || fail "someone else's daemon is not listed"
sleep 2.5   # a repair pass: someone else's daemon is left alone
ipvsadm -L -n --daemon | grep -q "syncid=5" || fail "uvs stopped someone else's daemon"
ipvsadm --stop-daemon backup
echo "ok sync daemons from uvsadm, as ipvsadm"
as_ipvsadm -L -n --nosort
echo "ok -L --nosort lists the kernel's order"

# Traffic through the kernel's VIP: wrr 3:1 over two web servers (masquerading).
for port in 8080 8081; do
    mkdir -p /www$port && echo "server $port" > /www$port/index.html
    busybox httpd -p 127.0.0.1:$port -h /www$port
done
answers=$(for _ in $(seq 8); do busybox wget -q -O - http://127.0.0.10/; done | sort | uniq -c | awk '{print $1 "x" $3}' | tr '\n' ' ')
[ "$answers" = "6x8080 2x8081 " ] || fail "wrr 3:1 through the kernel gave: $answers"
echo "ok traffic: $answers"
answers=$(ask_from_client 8)
[ "$answers" = "6xrs1 2xrs2 " ] || fail "wrr 3:1 from the client namespace gave: $answers"
echo "ok traffic between namespaces: $answers"
sleep 3   # the kernel's estimator folds counters in every 2 s
for _ in $(seq 30); do
    ipvsadm -L -n --stats --exact > k.txt
    $U -L -n --stats --exact > u.txt
    ipvsadm -L -n --rate --exact > kr.txt
    $U -L -n --rate --exact > ur.txt
    cmp -s k.txt u.txt && cmp -s kr.txt ur.txt && break
    sleep 0.2
done
cmp -s k.txt u.txt || { cat k.txt u.txt; fail "--stats differ"; }
cmp -s kr.txt ur.txt || { cat kr.txt ur.txt; fail "--rate differ"; }
grep -q '^TCP  127.0.0.10:80 *8 ' k.txt || { cat k.txt; fail "8 connections counted"; }
echo "ok counters: uvsadm --stats and --rate are the kernel's"
for _ in $(seq 30); do
    ipvsadm -L -n -c > kc.txt; $U -L -n -c > uc.txt
    cmp -s kc.txt uc.txt && break
    sleep 0.2
done
cmp -s kc.txt uc.txt || { cat kc.txt uc.txt; fail "-L -c differ"; }
grep -c TIME_WAIT kc.txt | grep -qx 16 || { cat kc.txt; fail "16 connections in TIME_WAIT"; }
echo "ok -L -c is the kernel's"
kernel_conns=$(( 16#$(sed -n 3p /proc/net/ip_vs_stats | awk '{print $1}') ))
metric=$(busybox wget -q -O - http://127.0.0.1:9280/metrics | awk '$1 == "node_ipvs_connections_total" {print $2}')
[ "$metric" = "$kernel_conns" ] || fail "node_ipvs_connections_total $metric, the kernel's $kernel_conns"
echo "ok metrics: node_ipvs_connections_total $metric, as /proc/net/ip_vs_stats"
compare "after traffic"

# A real server stops: its check quiesces it in the kernel, as ldirectord would.
kill "$httpd_rs2"
for _ in $(seq 50); do
    ipvsadm -L -n | grep -q '198.51.100.6:80 *Masq *0 ' && break
    sleep 0.2
done
ipvsadm -L -n | grep -q '198.51.100.6:80 *Masq *0 ' || { ipvsadm -L -n; fail "the stopped server is not quiesced"; }
compare "a stopped real server quiesced by its health check"
answers=$(ask_from_client 4)
[ "$answers" = "4xrs1 " ] || fail "after the quiesce the client got: $answers"
echo "ok clients reach only the live server: $answers"
$U -Z -t 127.0.0.10:80
for _ in $(seq 30); do ipvsadm -L -n --stats | grep -q '^TCP  127.0.0.10:80 *0 ' && break; sleep 0.2; done
ipvsadm -L -n --stats | grep -q '^TCP  127.0.0.10:80 *0 ' || fail "-Z did not reach the kernel"
echo "ok -Z"

write_config 5 8082 "$CHECKED"
kill -HUP $pid
compare "reload (weights, servers, services)"
# The file's [sync] starts the kernel's master daemon; a stop behind uvs's back is
# repaired at the next pass.
wait_daemon() {
    for _ in $(seq 50); do ipvsadm -L -n --daemon | grep -q "$1" && return; sleep 0.2; done
    ipvsadm -L -n --daemon; fail "$2"
}
wait_daemon "^master sync daemon (mcast=lo, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)$" "[sync] did not start the kernel's daemon"
as_ipvsadm -L -n --daemon
ipvsadm --stop-daemon master
wait_daemon "^master sync daemon (mcast=lo, syncid=9" "the daemon stopped behind uvs's back was not started again"
echo "ok [sync] runs the kernel's daemon"
# A new server starts up; its first check, within a second, takes it out.
for _ in $(seq 50); do
    ipvsadm -L -n | grep -q '127.0.0.1:9002' || break
    sleep 0.2
done
ipvsadm -L -n | grep -q '127.0.0.1:9002' && fail "the server whose check is off is still in the kernel"
compare "health check"

$U -a -t 127.0.0.10:80 -r 127.0.0.1:8090 -m -w 7 || fail "uvsadm -a"
compare "uvsadm -a"

ipvsadm -d -t 127.0.0.10:80 -r 127.0.0.1:8090
compare "a change made behind uvs's back is repaired"

# A [sync] daemon the kernel refuses (an IPv6 group on lo: ENETUNREACH) is shown
# down with the kernel's reason, tried again, and said once in the log.
write_config 5 8082 "$SYNC9"'group = "ff02::1:81"'"${CHECKED#"$SYNC9"}"
kill -HUP $pid
metric_up() {
    busybox wget -q -O - http://127.0.0.1:9280/metrics | awk -v m="uvs_sync_daemon_up{role=\"$1\"}" '$1 == m {print $2}'
}
down_line="  the master sync daemon is not running: Network is unreachable; retrying every 2 s"
for _ in $(seq 50); do
    /opt/uvs/uvs status --socket /root/uvs.sock > status.txt
    grep -qxF "$down_line" status.txt && break
    sleep 0.2
done
grep -qxF "$down_line" status.txt || { cat status.txt; fail "the refused [sync] daemon is not shown down"; }
[ "$(metric_up master)" = 0 ] || fail "uvs_sync_daemon_up{role=master} is $(metric_up master)"
sleep 5   # passes go on trying
[ "$(grep -c 'kernel refused: --start-daemon master: Network is unreachable' uvs.log)" = 1 ] ||
    { grep 'kernel refused' uvs.log; fail "the refusal is not said once"; }
[ -z "$(ipvsadm -L -n --daemon)" ] || fail "a daemon runs: $(ipvsadm -L -n --daemon)"
as_ipvsadm -L -n --daemon
echo "ok a [sync] daemon the kernel refuses is shown down with its reason"
# uvsadm's start of that role goes to the kernel, which takes it: it is the table's.
$U --start-daemon master --mcast-interface lo --syncid 4 || fail "--start-daemon of the refused role"
sleep 2.5   # a pass: the daemon uvsadm started stays
wait_daemon "^master sync daemon (mcast=lo, syncid=4, " "uvsadm's daemon does not run"
as_ipvsadm -L -n --daemon
/opt/uvs/uvs status --socket /root/uvs.sock > status.txt
grep -q "not running" status.txt && { cat status.txt; fail "still shown down"; }
grep -qx "master sync daemon (mcast=lo, syncid=4, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" status.txt ||
    { cat status.txt; fail "uvs status does not list the kernel's daemon"; }
[ "$(metric_up master)" = 1 ] || fail "uvs_sync_daemon_up{role=master} is $(metric_up master) once it runs"
as_ipvsadm --start-daemon master --mcast-interface lo --syncid 4
grep -qx "Daemon has already run" ue.txt || fail "a second start: $(cat ue.txt)"
echo "ok uvsadm --start-daemon of a refused role goes to the kernel"

kill -TERM $pid
wait $pid
saved=$(ipvsadm -S -n)
[ "$saved" = "$others" ] || fail "after a clean stop the kernel has: $saved"
[ -z "$(ipvsadm -L -n --daemon)" ] || fail "after a clean stop a sync daemon runs: $(ipvsadm -L -n --daemon)"
echo "ok clean stop"

# cleanstop = false leaves the file's daemon running; the next uvs, whose [sync] has
# another sync id, replaces it; someone else's backup (a role [sync] does not name)
# stays.
sync_only() {
    printf '[global]\nmode = "kernel"\ncleanstop = %s\n%s' "$1" "${SYNC9/syncid = 9/syncid = $2}" > uvs.toml
}
sync_only false 9
/opt/uvs/uvs run --socket /root/uvs.sock -c uvs.toml 2> uvs.log &
pid=$!
wait_daemon "^master sync daemon (mcast=lo, syncid=9, " "[sync] did not start the kernel's daemon"
kill -TERM $pid
wait $pid
ipvsadm -L -n --daemon | grep -q "^master sync daemon (mcast=lo, syncid=9, " || fail "cleanstop = false stopped the daemon"
ipvsadm --start-daemon backup --mcast-interface lo --syncid 5   # someone else's
sync_only true 10
/opt/uvs/uvs run --socket /root/uvs.sock -c uvs.toml 2> uvs.log &
pid=$!
wait_daemon "^master sync daemon (mcast=lo, syncid=10, " "the daemon an earlier uvs left was not replaced"
sleep 2.5   # a pass: someone else's backup stays, and the replacement is said once
[ "$(grep -c "that uvs did not start holds the role the file's \[sync\] names; stopped for the file's" uvs.log)" = 1 ] ||
    fail "the replacement is not said once"
ipvsadm -L -n --daemon | grep -q "^backup sync daemon (mcast=lo, syncid=5, " || fail "uvs stopped someone else's backup"
as_ipvsadm -L -n --daemon
kill -TERM $pid
wait $pid
[ "$(ipvsadm -L -n --daemon | cut -d, -f1,2)" = "backup sync daemon (mcast=lo, syncid=5" ] ||
    fail "after a clean stop: $(ipvsadm -L -n --daemon)"
echo "ok the file's [sync] replaces the daemon an earlier uvs left, and only in its roles"

# A [sync] daemon whose interface is missing waits, shown down with the reason, while
# the rest of the file runs; the mirror's passes do not clear what the reloader says of
# it; once the interface is there, the daemon runs in the kernel.
ipvsadm --stop-daemon backup
printf '[global]\nmode = "kernel"\nmetrics = "127.0.0.1:9280"\n%s\n[[service]]\ntcp = "127.0.0.12:80"\n[[service.server]]\naddress = "127.0.0.1:9003"\n' \
    "${SYNC9/interface = \"lo\"/interface = \"uvssync0\"}" > uvs.toml
/opt/uvs/uvs run --socket /root/uvs.sock -c uvs.toml 2> uvs.log &
pid=$!
down_line='  the master sync daemon is not running: No such device (sync.interface = "uvssync0"); retrying every 2 s'
for _ in $(seq 50); do
    /opt/uvs/uvs status --socket /root/uvs.sock > status.txt 2>/dev/null
    grep -qxF "$down_line" status.txt && break
    sleep 0.2
done
grep -qxF "$down_line" status.txt || { cat status.txt; fail "the [sync] daemon without its interface is not shown down"; }
ipvsadm -L -n | grep -q '^TCP  127.0.0.12:80 ' || fail "the file's service is not in the kernel"
sleep 4.5   # two of the mirror's passes
/opt/uvs/uvs status --socket /root/uvs.sock > status.txt
grep -qxF "$down_line" status.txt || { cat status.txt; fail "a mirror pass cleared the waiting daemon's state"; }
[ "$(metric_up master)" = 0 ] || fail "uvs_sync_daemon_up{role=master} is $(metric_up master) while it waits"
ip link add uvssync0 type dummy
ip addr add 127.77.77.1/32 dev uvssync0
ip link set uvssync0 up
wait_daemon "^master sync daemon (mcast=uvssync0, syncid=9, " "the waiting daemon did not start once its interface came"
sleep 2.5   # a pass
/opt/uvs/uvs status --socket /root/uvs.sock > status.txt
grep -q "not running" status.txt && { cat status.txt; fail "still shown down once running"; }
[ "$(metric_up master)" = 1 ] || fail "uvs_sync_daemon_up{role=master} is $(metric_up master) once it runs"
kill -TERM $pid
wait $pid
ip link del uvssync0
[ -z "$(ipvsadm -L -n --daemon)" ] || fail "after a clean stop: $(ipvsadm -L -n --daemon)"
echo "ok a [sync] daemon whose interface is missing waits, shown down, and starts once it is there"
