#!/bin/bash
# Runs inside shared/ipvs-vm (a Debian kernel with IPVS), in a boot of its own: uvs's
# userspace sync daemons and the kernel's speak the same protocol, both ways. Two
# network namespaces joined by a veth pair, `kern` (the kernel's IPVS; veth vk,
# 192.0.2.1) and `uvs` (uvs in userspace mode; veth vu, 192.0.2.2), each with the same
# persistent service 127.0.0.10:80 (rr, -p 600) over the same three real servers on its
# own loopback (examples/many_clients serve A, B, C at 127.0.0.1:8081-8083), added in
# the same order. Sync id 5, the default group 224.0.0.81:8848, over the veth.
#  1. kernel master -> uvs backup: CLIENTS (default 200) clients from 127.100.0.1 on
#     ask the kernel's VIP; uvs then lists the kernel's templates (-L -c: same client,
#     virtual address, real server and state) and sends each client, asking uvs's VIP,
#     to the server the kernel gave it.
#  2. uvs master -> kernel backup (the daemons stopped and started the other way):
#     other clients, from 127.101.0.1 on, ask uvs's VIP; the kernel lists uvs's
#     templates, and
#  3. uvs's connection entries (same client address and port, virtual address, real
#     server, state); then the kernel sends each client to the server uvs gave it.
#  4. as 1, with the kernel's master on the original format (sync_version 0, which
#     has no timeouts: uvs gives a template 3 minutes, as the kernel's backup does);
#  5. as 1 and 6. as 2 and 3, over the IPv6 group ff02::81 on the veth.
# At the end the kernel's log must have nothing about IPVS but its sync threads' start
# and stop (a datagram it cannot read is logged "BACKUP, Dropping buffer ...").
# The kernel's sync sysctls keep their defaults (sync_threshold 3, sync_period 50, sync
# version 1): a client's connection passes enough packets (and state changes) for the
# kernel's master to send it and its template.
# Helpers: /opt/uvs/uvs, /opt/uvs/uvsadm and /opt/uvs/many_clients (examples/).
set -u
export LC_ALL=C
cd /root
N=${CLIENTS:-200}
H=/opt/uvs/many_clients
K="ip netns exec kern"
S="ip netns exec uvs"
U="$S /opt/uvs/uvsadm --socket /root/uvs.sock"
mkdir -p res
failed=0
# A mismatch is reported and the run goes on, so that one boot shows every fault; the
# exit status is 1 if there was any.
fail() { echo "FAIL: $*"; failed=1; }
die() { echo "FAIL: $*"; diagnose; exit 1; }
diagnose() {
    echo "--- ipvsadm -L -n --daemon (kern)"; $K ipvsadm -L -n --daemon
    echo "--- uvs status"; $S /opt/uvs/uvs status --socket /root/uvs.sock 2>&1 | grep -i sync
    echo "--- dmesg | grep -i ipvs"; dmesg | grep -i ipvs | tail -30
    echo "--- uvs log (tail)"; tail -30 uvs.log
}

# The namespaces and the link between them; multicast needs no route with the
# interface named.
for ns in kern uvs; do
    ip netns add $ns || die "ip netns add $ns"
    # IPv6 link-local addresses usable at once (no duplicate address detection), for
    # the IPv6 group.
    ip netns exec $ns sysctl -qw net.ipv6.conf.all.accept_dad=0
    ip netns exec $ns sysctl -qw net.ipv6.conf.default.accept_dad=0
done
ip link add vk type veth peer name vu || die "veth"
ip link set vk netns kern
ip link set vu netns uvs
$K ip addr add 192.0.2.1/24 dev vk
$S ip addr add 192.0.2.2/24 dev vu
for ns in kern uvs; do
    ip -n $ns link set lo up
done
$K ip link set vk up
$S ip link set vu up

# The same real servers in both.
for ns in kern uvs; do
    ip netns exec $ns $H serve A=127.0.0.1:8081 B=127.0.0.1:8082 C=127.0.0.1:8083 > serve-$ns.log 2>&1 &
    eval "serve_$ns=\$!"
done
$S /opt/uvs/uvs run --mode userspace --socket /root/uvs.sock --metrics off 2> uvs.log &
uvs=$!
trap 'kill $serve_kern $serve_uvs $uvs 2> /dev/null' EXIT
for _ in $(seq 100); do
    [ -S /root/uvs.sock ] && grep -q serving serve-kern.log && grep -q serving serve-uvs.log && break
    sleep 0.1
done
[ -S /root/uvs.sock ] || die "uvs did not start"
grep -q serving serve-kern.log && grep -q serving serve-uvs.log || die "the real servers did not start"

# The same service in both, servers added in the same order.
$K ipvsadm -A -t 127.0.0.10:80 -s rr -p 600 || die "ipvsadm -A"
$U -A -t 127.0.0.10:80 -s rr -p 600 || die "uvsadm -A"
for port in 8081 8082 8083; do
    $K ipvsadm -a -t 127.0.0.10:80 -r 127.0.0.1:$port -m || die "ipvsadm -a"
    $U -a -t 127.0.0.10:80 -r 127.0.0.1:$port -m || die "uvsadm -a"
done
for _ in $(seq 100); do $S ss -ltn | grep -q '127.0.0.10:80 ' && break; sleep 0.1; done
$S ss -ltn | grep -q '127.0.0.10:80 ' || die "uvs does not listen on its VIP"
$K ipvsadm -S -n > k.rules
$U -S -n > u.rules
cmp -s k.rules u.rules || { cat k.rules u.rules; die "the two tables differ"; }
echo "ok setup: namespaces kern (vk 192.0.2.1) and uvs (vu 192.0.2.2), the same service in both: $(tr '\n' ' ' < k.rules)"

# "client virtual real protocol state" of the templates (source port 0) that
# `-L -c -n` (the command $1...) lists for clients starting with $PREFIX, sorted.
templates() {
    "$@" -L -c -n | awk -v p="$PREFIX" '$4 ~ /:0$/ && index($4, p) == 1 {
        sub(/:0$/, "", $4); print $4, $5, $6, $1, $3 }' | sort
}
# "client:port virtual real protocol state" of the connections (source port not 0).
connections() {
    "$@" -L -c -n | awk -v p="$PREFIX" '$4 !~ /:0$/ && index($4, p) == 1 {
        print $4, $5, $6, $1, $3 }' | sort
}
# Waits (bounded) until the listing of $2... has $1 templates of clients $PREFIX.
wait_templates() {
    local want=$1
    shift
    for _ in $(seq 150); do
        [ "$(templates "$@" | wc -l)" = "$want" ] && return 0
        sleep 0.2
    done
    return 1
}
# The clients' answers: N lines "client server", every client answered.
ask() {
    $1 $H ask 127.0.0.10:80 "$2" "$N" > "res/$3" || fail "$3: many_clients ask"
    local answered
    answered=$(awk '$2 != "-"' "res/$3" | wc -l)
    [ "$answered" = "$N" ] || fail "$3: $answered of $N clients answered"
}
counts() { awk '{print $2}' "res/$1" | sort | uniq -c | awk '{printf " %s=%s", $2, $1}'; }
# How many clients got another server in res/$1 than in res/$2.
differ() { paste -d' ' "res/$1" "res/$2" | awk '$1 != $3 || $2 != $4' | wc -l; }
# The server a port is: A B C.
servers_of() { sed -e 's/127\.0\.0\.1:8081/A/; s/127\.0\.0\.1:8082/B/; s/127\.0\.0\.1:8083/C/'; }

# The daemons: $1 (kernel or uvs) is the master, the other the backup, both with the
# options $2 (the group). stop_daemons stops them.
start_daemons() {
    local kernel_role=backup uvs_role=master
    [ "$1" = kernel ] && kernel_role=master uvs_role=backup
    # shellcheck disable=SC2086
    $K ipvsadm --start-daemon $kernel_role --mcast-interface vk --syncid 5 $2 || die "ipvsadm --start-daemon $kernel_role"
    # shellcheck disable=SC2086
    $U --start-daemon $uvs_role --mcast-interface vu --syncid 5 $2 || die "uvsadm --start-daemon $uvs_role"
    running="$kernel_role $uvs_role"
    echo "   kern: $($K ipvsadm -L -n --daemon)"
    echo "   uvs:  $($U -L -n --daemon)"
}
stop_daemons() {
    set -- $running
    $K ipvsadm --stop-daemon "$1" || die "ipvsadm --stop-daemon $1"
    $U --stop-daemon "$2" || die "uvsadm --stop-daemon $2"
}
sync_status() { $S /opt/uvs/uvs status --socket /root/uvs.sock | grep '^sync\|sync dropped' | tr '\n' ' '; }
states() { awk '{print $4 "/" $5}' "$1" | sort | uniq -c | awk '{printf " %s %s", $1, $2}'; }
# The soonest and the latest expiry of the templates `-L -c -n` ($1...) lists for
# clients $PREFIX (shown, not compared: they count down).
expiry() {
    "$@" -L -c -n | awk -v p="$PREFIX" '$4 ~ /:0$/ && index($4, p) == 1 {print $2}' | sort |
        awk 'NR == 1 {a = $1} {b = $1} END {printf "%s-%s", a, b}'
}

# The kernel's master, uvs's backup: clients from $2 on (label $1, daemon options $3)
# ask the kernel; uvs lists its templates and sends the clients where it did.
kernel_to_uvs() {
    local step=$1 first=$2 d
    PREFIX=${first%.*.*}.
    start_daemons kernel "$3"
    ask "$K" "$first" "kernel-$step"
    echo "   $N clients from $first asked the kernel's VIP:$(counts "kernel-$step")"
    templates $K ipvsadm > "res/kernel-$step.templates"
    [ "$(wc -l < "res/kernel-$step.templates")" = "$N" ] || fail "$step: the kernel lists $(wc -l < "res/kernel-$step.templates") templates, not $N"
    wait_templates "$N" $U || fail "$step: uvs lists $(templates $U | wc -l) of the kernel's $N templates"
    templates $U > "res/uvs-$step.templates"
    # Listed again: what the kernel changed (a template's state) while uvs waited.
    templates $K ipvsadm > "res/kernel-$step.templates"
    cut -d' ' -f1-3 "res/kernel-$step.templates" > a.tmp
    cut -d' ' -f1-3 "res/uvs-$step.templates" > b.tmp
    if cmp -s a.tmp b.tmp; then
        echo "ok $step: uvs lists the kernel's $N templates: same clients, virtual address and real servers"
    else
        diff a.tmp b.tmp | head -10
        fail "$step: uvs's templates (client virtual real) are not the kernel's"
    fi
    if cmp -s "res/kernel-$step.templates" "res/uvs-$step.templates"; then
        echo "ok $step: and the same protocol and state:$(states "res/uvs-$step.templates")"
        echo "   templates expire in: kernel $(expiry $K ipvsadm), uvs $(expiry $U)"
    else
        diff "res/kernel-$step.templates" "res/uvs-$step.templates" | head -10
        fail "$step: uvs's templates (protocol, state) are not the kernel's"
    fi
    # The templates name the servers the clients got.
    awk '{print $1, $3}' "res/kernel-$step.templates" | servers_of > a.tmp
    sort "res/kernel-$step" > b.tmp
    cmp -s a.tmp b.tmp || fail "$step: the kernel's templates are not the servers its clients got"
    connections $U > "res/uvs-$step.connections"
    connections $K ipvsadm > "res/kernel-$step.connections"
    echo "   uvs holds $(wc -l < "res/uvs-$step.connections") of the kernel's connections (the kernel lists $(wc -l < "res/kernel-$step.connections")):$(states "res/uvs-$step.connections")"
    ask "$S" "$first" "uvs-$step"
    d=$(differ "kernel-$step" "uvs-$step")
    if [ "$d" = 0 ]; then
        echo "ok $step: the same $N clients asking uvs's VIP got the server the kernel gave them, every one (uvs:$(counts "uvs-$step"))"
    else
        paste -d' ' "res/kernel-$step" "res/uvs-$step" | awk '$2 != $4' | head -10
        fail "$step: $d of $N clients got another server from uvs than from the kernel"
    fi
    templates $U > b.tmp
    [ "$(wc -l < b.tmp)" = "$N" ] || fail "$step: uvs made new templates: $(wc -l < b.tmp)"
    echo "   $(sync_status)"
    stop_daemons
}

# uvs's master, the kernel's backup: clients from $2 on (label $1, daemon options $3)
# ask uvs; the kernel lists its templates and connections (label $4), and sends the
# clients where uvs did.
uvs_to_kernel() {
    local step=$1 first=$2 d
    PREFIX=${first%.*.*}.
    start_daemons uvs "$3"
    ask "$S" "$first" "uvs-$step"
    echo "   $N clients from $first asked uvs's VIP:$(counts "uvs-$step")"
    templates $U > "res/uvs-$step.templates"
    [ "$(wc -l < "res/uvs-$step.templates")" = "$N" ] || fail "$step: uvs lists $(wc -l < "res/uvs-$step.templates") templates, not $N"
    wait_templates "$N" $K ipvsadm || fail "$step: the kernel lists $(templates $K ipvsadm | wc -l) of uvs's $N templates"
    templates $K ipvsadm > "res/kernel-$step.templates"
    templates $U > "res/uvs-$step.templates"
    cut -d' ' -f1-3 "res/uvs-$step.templates" > a.tmp
    cut -d' ' -f1-3 "res/kernel-$step.templates" > b.tmp
    if cmp -s a.tmp b.tmp; then
        echo "ok $step: the kernel lists uvs's $N templates: same clients, virtual address and real servers"
    else
        diff a.tmp b.tmp | head -10
        fail "$step: the kernel's templates (client virtual real) are not uvs's"
    fi
    if cmp -s "res/uvs-$step.templates" "res/kernel-$step.templates"; then
        echo "ok $step: and the same protocol and state:$(states "res/kernel-$step.templates")"
        echo "   templates expire in: uvs $(expiry $U), kernel $(expiry $K ipvsadm)"
    else
        diff "res/uvs-$step.templates" "res/kernel-$step.templates" | head -10
        fail "$step: the kernel's templates (protocol, state) are not uvs's"
    fi
    awk '{print $1, $3}' "res/uvs-$step.templates" | servers_of > a.tmp
    sort "res/uvs-$step" > b.tmp
    cmp -s a.tmp b.tmp || fail "$step: uvs's templates are not the servers its clients got"
    # uvs's connection entries in the kernel, before any of these clients asks it.
    connections $U > "res/uvs-$step.connections"
    connections $K ipvsadm > "res/kernel-$step.connections"
    if [ "$(wc -l < "res/uvs-$step.connections")" = "$N" ] && cmp -s "res/uvs-$step.connections" "res/kernel-$step.connections"; then
        echo "ok $4: the kernel lists uvs's $N connections: same client address and port, virtual address, real server, protocol and state:$(states "res/kernel-$step.connections")"
    else
        echo "   uvs lists $(wc -l < "res/uvs-$step.connections"), the kernel $(wc -l < "res/kernel-$step.connections")"
        diff "res/uvs-$step.connections" "res/kernel-$step.connections" | head -10
        fail "$4: the kernel's connections from uvs are not uvs's"
    fi
    ask "$K" "$first" "kernel-$step"
    d=$(differ "uvs-$step" "kernel-$step")
    if [ "$d" = 0 ]; then
        echo "ok $step: the same $N clients asking the kernel's VIP got the server uvs gave them, every one (kernel:$(counts "kernel-$step"))"
    else
        paste -d' ' "res/uvs-$step" "res/kernel-$step" | awk '$2 != $4' | head -10
        fail "$step: $d of $N clients got another server from the kernel than from uvs"
    fi
    templates $K ipvsadm > b.tmp
    [ "$(wc -l < b.tmp)" = "$N" ] || fail "$step: the kernel made new templates: $(wc -l < b.tmp)"
    echo "   $(sync_status)"
    stop_daemons
}

echo "1. kernel master -> uvs backup"
kernel_to_uvs 1 127.100.0.1 ""
echo "2. uvs master -> kernel backup (3: uvs's connections)"
uvs_to_kernel 2 127.101.0.1 "" 3
# The kernel's master can still send the original format (no timeouts: a backup gives
# a template 3 minutes, as ip_vs_proc_conn does).
echo "4. kernel master -> uvs backup, sync_version 0"
$K sysctl -qw net.ipv4.vs.sync_version=0 || die "sysctl sync_version"
kernel_to_uvs 4 127.102.0.1 ""
$K sysctl -qw net.ipv4.vs.sync_version=1
longest=$($U -L -c -n | awk '$4 ~ /^127\.102\..*:0$/ {print $2}' | sort | tail -1)
if [ -n "$longest" ] && [[ "$longest" < "03:01" ]]; then
    echo "ok 4: uvs gives the templates of version 0 3 minutes at most (the longest expires in $longest)"
else
    fail "4: a template of version 0 expires in $longest on uvs, after more than 3 minutes"
fi
# Over an IPv6 group on the link (the entries are the same IPv4 ones).
echo "5. kernel master -> uvs backup over the IPv6 group ff02::81"
kernel_to_uvs 5 127.103.0.1 "--mcast-group ff02::81"
echo "6. uvs master -> kernel backup over the IPv6 group ff02::81"
uvs_to_kernel 6 127.104.0.1 "--mcast-group ff02::81" 6

# The kernel's log: only its threads' start and stop, nothing about bad datagrams
# (ip_vs_process_message logs "BACKUP, Dropping buffer ..." with pr_err; the per-entry
# faults only with CONFIG_IP_VS_DEBUG, which Debian's kernel has not).
dmesg | grep -i ipvs > dmesg.txt
echo "--- dmesg | grep -i ipvs"; cat dmesg.txt
grep -v -e 'sync thread started' -e 'stopping \(master\|backup\) sync thread' \
    -e 'Registered protocols' -e 'Connection hash table configured' -e 'ipvs loaded' \
    -e '\[[a-z]*\] scheduler registered' -e 'ftp: loaded support' -e 'pe registered' dmesg.txt > dmesg.other
if [ -s dmesg.other ]; then
    cat dmesg.other
    fail "the kernel logged something about IPVS beyond its threads"
else
    echo "ok dmesg: $(grep -c 'sync thread started' dmesg.txt) sync threads started, $(grep -c 'stopping' dmesg.txt) stopped; nothing else about IPVS ($( [ -e /proc/sys/net/ipv4/vs/debug_level ] && echo 'debug_level exists' || echo 'no CONFIG_IP_VS_DEBUG'))"
fi

cp -r res dmesg.txt uvs.log "${OUT:-/out}/" 2> /dev/null
if [ "$failed" != 0 ]; then
    diagnose
    exit 1
fi
echo "all agree"
