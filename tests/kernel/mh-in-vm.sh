#!/bin/bash
# Runs inside shared/ipvs-vm (a Debian kernel with IPVS), after in-vm.sh in its own
# boot: the real server the kernel's mh, sh and dh schedulers pick for each client is
# the one uvs picks in userspace mode, client by client, from CLIENTS (default 1000)
# loopback addresses 127.100.0.1 and on. Each scheduler's service is made twice with
# the same real servers added in the same order: once in the kernel (-m, masquerading
# to servers on loopback), once in uvs on another VIP. Then the same changes are made
# to both (a server deleted, a server quiesced) and the clients asked again. Prints,
# per case, how many clients each real server got, and writes $OUT/kernel-choices.txt:
# the kernel's pick for each client, which tests/scale_out.rs requires of uvs on any
# host (tests/fixtures/kernel-choices.txt is that file of a run with -e CLIENTS=2000).
# Helpers: /opt/uvs/uvs, /opt/uvs/uvsadm and /opt/uvs/many_clients (examples/).
set -u
cd /root
N=${CLIENTS:-1000}
H=/opt/uvs/many_clients
U="/opt/uvs/uvsadm --socket /root/uvs.sock"
mkdir -p res
fail() { echo "FAIL: $*"; echo "--- uvs log"; cat uvs.log; exit 1; }
now() { cut -d' ' -f1 /proc/uptime; }

# Four real servers that answer their names; A B C D at 127.77.1.1-4, port 8080.
$H serve A=127.77.1.1:8080 B=127.77.1.2:8080 C=127.77.1.3:8080 D=127.77.1.4:8080 > serve.log 2>&1 &
serving=$!
/opt/uvs/uvs run --mode userspace --socket /root/uvs.sock --metrics off 2> uvs.log &
uvs=$!
trap 'kill $serving $uvs 2> /dev/null' EXIT
for _ in $(seq 100); do [ -S /root/uvs.sock ] && grep -q serving serve.log && break; sleep 0.1; done
[ -S /root/uvs.sock ] || fail "uvs did not start"
grep -q serving serve.log || { cat serve.log; fail "the real servers did not start"; }

# The rules for one service at $1 with scheduler $2, servers added in the order $3
# (-a puts the newest first: "D C B A" makes the list A B C D, as the file
# [A, B, C, D] of a uvs.toml does).
rules() {
    echo "-A -t $1 -s $2"
    for s in $3; do
        case $s in A) a=1 ;; B) a=2 ;; C) a=3 ;; D) a=4 ;; esac
        echo "-a -t $1 -r 127.77.1.$a:8080 -m -w 1"
    done
}
{
    rules 127.0.0.10:80 mh "D C B A"
    rules 127.0.0.12:80 mh "A B C D"
    rules 127.0.0.16:80 mh "D B A C"
    rules 127.0.0.14:80 sh "D C B A"
    for i in $(seq 32); do rules 127.0.60.$i:80 dh "D C B A"; done
} > kernel.rules
# uvs: the same services one address (dh: one port) further on.
sed -e 's/127\.0\.0\.10:80/127.0.0.11:80/; s/127\.0\.0\.12:80/127.0.0.13:80/' \
    -e 's/127\.0\.0\.14:80/127.0.0.15:80/; s/127\.0\.0\.16:80/127.0.0.17:80/; s/\(127\.0\.60\.[0-9]*\):80/\1:81/' kernel.rules > uvs.rules
ipvsadm -R < kernel.rules || fail "ipvsadm -R"
$U -R < uvs.rules || fail "uvsadm -R"
for _ in $(seq 100); do ss -ltn | grep -q '127.0.60.32:81 ' && break; sleep 0.1; done
ss -ltn | grep -q '127.0.60.32:81 ' || fail "uvs does not listen on its VIPs"

# Asks $1 (the kernel's VIP) and $2 (uvs's) from $3 clients into res/$4.kernel and
# res/$4.uvs; fails unless every client got the same real server from both. Prints
# how many clients each server got ('-': none).
compare() {
    local t0 t1 differ counts
    t0=$(now)
    # Both at once: the VM has two CPUs.
    $H ask "$1" 127.100.0.1 "$3" > "res/$4.kernel" &
    local kernel=$!
    $H ask "$2" 127.100.0.1 "$3" > "res/$4.uvs" || fail "$4: asking uvs"
    wait $kernel || fail "$4: asking the kernel"
    t1=$(now)
    [ "$(wc -l < "res/$4.kernel")" = "$3" ] || fail "$4: $(wc -l < "res/$4.kernel") answers of $3"
    differ=$(paste -d' ' "res/$4.kernel" "res/$4.uvs" | awk '$1 != $3 || $2 != $4' | wc -l)
    counts=$(awk '{print $2}' "res/$4.kernel" | sort | uniq -c | awk '{printf " %s=%s", $2, $1}')
    if [ "$differ" != 0 ]; then
        paste -d' ' "res/$4.kernel" "res/$4.uvs" | awk '$2 != $4' | head -20
        fail "$4: the kernel and uvs disagree for $differ of $3 clients (kernel:$counts)"
    fi
    echo "ok $4: $3 clients, the kernel and uvs agree for every one;$counts ($(awk "BEGIN {print $t1 - $t0}") s)"
}
# How many clients of res/$1 have another server in res/$2 (the first $3 lines).
moved() {
    head -n "$3" "res/$1.kernel" > a.tmp
    head -n "$3" "res/$2.kernel" > b.tmp
    paste -d' ' a.tmp b.tmp | awk '$2 != $4' | wc -l
}

compare 127.0.0.10:80 127.0.0.11:80 "$N" mh
compare 127.0.0.12:80 127.0.0.13:80 "$N" mh-reversed
echo "ok mh: the server order changes the choice of $(moved mh mh-reversed "$N") of $N clients"
compare 127.0.0.16:80 127.0.0.17:80 "$N" mh-C-first
echo "ok mh: C first (C A B D) changes the choice of $(moved mh mh-C-first "$N") of $N clients"
compare 127.0.0.14:80 127.0.0.15:80 "$N" sh
for i in $(seq 32); do
    $H ask 127.0.60.$i:80 127.100.0.1 1 | sed "s/^[^ ]*/127.0.60.$i/"
done > res/dh.kernel
for i in $(seq 32); do
    $H ask 127.0.60.$i:81 127.100.0.1 1 | sed "s/^[^ ]*/127.0.60.$i/"
done > res/dh.uvs
cmp -s res/dh.kernel res/dh.uvs || { paste res/dh.kernel res/dh.uvs; fail "dh: the kernel and uvs disagree"; }
echo "ok dh: 32 VIPs, the kernel and uvs pick the same server for each;$(awk '{print $2}' res/dh.kernel | sort | uniq -c | awk '{printf " %s=%s", $2, $1}')"

# C leaves both.
ipvsadm -d -t 127.0.0.10:80 -r 127.77.1.3:8080 || fail "ipvsadm -d"
$U -d -t 127.0.0.11:80 -r 127.77.1.3:8080 || fail "uvsadm -d"
compare 127.0.0.10:80 127.0.0.11:80 "$N" mh-without-C
c_clients=$(awk '$2 == "C"' res/mh.kernel | wc -l)
others=$(paste -d' ' res/mh.kernel res/mh-without-C.kernel | awk '$2 != "C" && $2 != $4' | wc -l)
echo "ok mh without C: C's $c_clients clients moved; $others of the others did"

# B quiesced (weight 0) in both: mh keeps B's slots (its last weight), so B's clients
# get nothing and nobody else moves; sh refills its buckets, where a server of weight
# 0 takes one bucket a turn, as one of weight 1 does: here too only B's clients change.
ipvsadm -e -t 127.0.0.10:80 -r 127.77.1.2:8080 -m -w 0 || fail "ipvsadm -e"
$U -e -t 127.0.0.11:80 -r 127.77.1.2:8080 -m -w 0 || fail "uvsadm -e"
compare 127.0.0.10:80 127.0.0.11:80 "$N" mh-B-quiesced
changed=$(paste -d' ' res/mh-without-C.kernel res/mh-B-quiesced.kernel | awk '$2 != $4 && !($2 == "B" && $4 == "-")' | wc -l)
[ "$changed" = 0 ] || fail "mh: quiescing B changed $changed clients other than B's"
echo "ok mh with B quiesced: B's clients get no server, nobody else moved"
ipvsadm -e -t 127.0.0.14:80 -r 127.77.1.2:8080 -m -w 0 || fail "ipvsadm -e"
$U -e -t 127.0.0.15:80 -r 127.77.1.2:8080 -m -w 0 || fail "uvsadm -e"
compare 127.0.0.14:80 127.0.0.15:80 "$N" sh-B-quiesced
echo "ok sh with B quiesced: $(moved sh sh-B-quiesced "$N") of $N clients changed"

# What the kernel picked, in the form of tests/fixtures/kernel-choices.txt (which is
# this file of a run with -e CLIENTS=2000 -o DIR).
{
    echo "# The real server (A-D at 127.77.1.1-4:8080; '-': none) the kernel's IPVS picked for"
    echo "# each client, 127.100.0.1 on, a character each, in each case of"
    echo "# tests/kernel/mh-in-vm.sh ($N clients) on Linux $(uname -r)"
    echo "# ($(sed -n 's/.*Debian \([^ ]*\).*/Debian \1/p' /proc/version)). tests/scale_out.rs wants uvs to pick the same."
    for c in mh mh-reversed mh-C-first mh-without-C mh-B-quiesced sh sh-B-quiesced; do
        printf '%s %s\n' "$c" "$(awk '{printf "%s", $2}' "res/$c.kernel")"
    done
} > "${OUT:-/out}/kernel-choices.txt" 2> /dev/null || true
echo "all agree"
