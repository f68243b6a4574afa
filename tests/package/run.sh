#!/usr/bin/env bash
# The Debian package on this machine, as CI must show it (issue 16): builds the .deb
# (scripts/build-deb), installs it with dpkg -i, and checks what a user gets: the man
# pages are found by man, `uvs --version` names this commit, the completion scripts
# load, the units verify, the shipped /etc/uvs/uvs.toml passes `uvs check`, the `uvs`
# system user exists and uvs.service (not uvs-kernel.service) is enabled. Then the
# ipvsadm alternative: on, /usr/sbin/ipvsadm and /sbin/ipvsadm (where ldirectord looks)
# reach uvsadm, off, the real ipvsadm (if this machine has the package) back unchanged;
# on again, and `dpkg --purge` must remove every path the package installed, the
# alternative, its diversions and the unit's enablement.
#
# Run by .ci/run, as root. It leaves the machine as it found it even when a check
# fails (trap): the package purged, the alternative off, and the `uvs` user, which a
# purge keeps as Debian keeps system users, removed if the test made it.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() {
    echo "package test: FAIL: $*" >&2
    exit 1
}
note() { echo "package test: $*"; }

[[ $(id -u) == 0 ]] || fail "needs root (dpkg -i, adduser, update-alternatives)"
for tool in dpkg dpkg-deb dpkg-divert dpkg-query update-alternatives man cargo-deb git; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
status=$(dpkg-query -W -f='${db:Status-Status}' uvs 2>/dev/null || true)
[[ -z $status || $status == not-installed ]] ||
    fail "a uvs package is on this machine ($status): the test would replace it"
# A hand install's configuration or ipvsadm alternative would be taken over, then removed.
[[ ! -e /etc/uvs ]] || fail "/etc/uvs is there (a hand install?): the test would take it over"
[[ $(pkg/deb/ipvsadm-alternative status) == "alternative ipvsadm: off" ]] ||
    fail "the ipvsadm alternative is on here (a hand install?): the test would turn it off"

work=$(mktemp -d)
had_user=no
getent passwd uvs >/dev/null && had_user=yes
had_group=no
getent group uvs >/dev/null && had_group=yes && group_gid=$(getent group uvs | cut -d: -f3)

cleanup() {
    local rc=$?
    set +e
    if [[ -n ${daemon:-} ]]; then
        kill -TERM "$daemon" 2>/dev/null
        wait "$daemon" 2>/dev/null
    fi
    [[ -n ${rundir:-} ]] && rm -rf "$rundir"
    status=$(dpkg-query -W -f='${db:Status-Status}' uvs 2>/dev/null)
    if [[ -n $status && $status != not-installed ]]; then
        dpkg --purge uvs >/dev/null
    fi
    # Whatever a failed prerm left: the alternative and the diversions.
    pkg/deb/ipvsadm-alternative disable --quiet
    [[ $had_user == no ]] && getent passwd uvs >/dev/null && deluser --quiet --system uvs 2>/dev/null
    [[ $had_group == no ]] && getent group uvs >/dev/null && delgroup --quiet --system uvs 2>/dev/null
    # deluser takes a user's empty group of the same name with it: one that was here stays.
    [[ $had_group == yes ]] && ! getent group uvs >/dev/null &&
        addgroup --quiet --system --gid "$group_gid" uvs
    rm -rf "$work"
    ((rc == 0)) || echo "package test: failed; the machine was put back as it was" >&2
    exit "$rc"
}
trap cleanup EXIT

# What uvs could leave behind, by name (other packages may come and go meanwhile):
# files, links and their targets, diversions and alternatives.
snapshot() {
    find /etc /usr/sbin /usr/lib/systemd /usr/share/man /usr/share/doc /usr/share/uvs \
        /usr/share/bash-completion /usr/share/zsh /usr/share/fish /var/lib/systemd \
        /var/lib/dpkg/alternatives -printf '%p %y %l\n' 2>/dev/null | grep -E 'uvs|ipvsadm' || true
    sha256sum /usr/sbin/ipvsadm* 2>/dev/null || true
    dpkg-divert --list | grep -E 'uvs|ipvsadm' || true
    update-alternatives --query ipvsadm 2>/dev/null || true
}
snapshot | sort >"$work/before"

note "building the package (scripts/build-deb)"
deb=$(scripts/build-deb 2>"$work/build.log" | tail -n 1) || {
    cat "$work/build.log" >&2
    fail "scripts/build-deb failed"
}
[[ $deb == *.deb && -f $deb ]] || fail "scripts/build-deb named no .deb: '$deb'"

# Every path the package holds, and whether it was there before (a directory such as
# /usr/sbin was; /etc/uvs was not).
dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' | grep -v '^/*$' >"$work/contents"
while read -r p; do
    [[ -e $p || -L $p ]] && echo "$p"
done <"$work/contents" >"$work/preexisting"

# Debian's minimal images drop man pages at install (path-exclude in
# /etc/dpkg/dpkg.cfg.d); uvs's own are let in, and the test says so.
dpkg_opts=()
if grep -rhs '^path-exclude.*/usr/share/man' /etc/dpkg/dpkg.cfg.d/ >/dev/null; then
    note "dpkg excludes /usr/share/man here (/etc/dpkg/dpkg.cfg.d): installing uvs's pages with --path-include"
    dpkg_opts+=(--path-include='/usr/share/man/man8/uvs*' --path-include='/usr/share/man/man5/uvs*')
fi
note "dpkg -i $(basename "$deb")"
dpkg "${dpkg_opts[@]}" -i "$deb" >"$work/dpkg.log" 2>&1 || {
    cat "$work/dpkg.log" >&2
    fail "dpkg -i failed"
}

for p in /usr/sbin/uvs /usr/sbin/uvsadm /usr/share/man/man8/uvs.8.gz \
    /usr/share/man/man8/uvsadm.8.gz /usr/share/man/man5/uvs.toml.5.gz \
    /usr/share/bash-completion/completions/uvs /usr/share/bash-completion/completions/uvsadm \
    /usr/share/zsh/vendor-completions/_uvs /usr/share/zsh/vendor-completions/_uvsadm \
    /usr/share/fish/vendor_completions.d/uvs.fish /usr/share/fish/vendor_completions.d/uvsadm.fish \
    /usr/lib/systemd/system/uvs.service /usr/lib/systemd/system/uvs-kernel.service \
    /etc/uvs/uvs.toml /usr/share/doc/uvs/copyright /usr/share/doc/uvs/README.md \
    /usr/share/uvs/ipvsadm-alternative; do
    [[ -e $p ]] || fail "$p is not installed"
done
# (Output is read whole, then searched: `| grep -q` would end the writer early, and
# pipefail would call that a failure.)
conffiles=$(dpkg-query -W -f='${Conffiles}\n' uvs)
grep -q '^ /etc/uvs/uvs.toml ' <<<"$conffiles" || fail "/etc/uvs/uvs.toml is not a conffile"

# man finds and renders the pages.
for page in "8 uvs" "8 uvsadm" "5 uvs.toml"; do
    # shellcheck disable=SC2086 # "section name"
    found=$(man -w $page) || fail "man -w $page finds nothing"
    [[ $found == /usr/share/man/man${page%% *}/${page#* }.${page%% *}.gz ]] ||
        fail "man -w $page finds $found"
    # shellcheck disable=SC2086
    text=$(MANPAGER=cat MANWIDTH=80 man $page 2>/dev/null) || fail "man $page fails"
    grep -q "${page#* }" <<<"$text" ||
        fail "man $page renders nothing naming ${page#* }"
done

# The binaries: uvs names the commit it was built from.
commit=$(git rev-parse --short=12 HEAD)
version=$(/usr/sbin/uvs --version)
[[ $version == *"$commit"* ]] || fail "uvs --version says '$version', not commit $commit"
/usr/sbin/uvs check -c /etc/uvs/uvs.toml >/dev/null || fail "uvs check refuses /etc/uvs/uvs.toml"

# The completions load in their shells.
complete=$(bash -c 'source /usr/share/bash-completion/completions/uvs &&
    source /usr/share/bash-completion/completions/uvsadm && complete -p uvs uvsadm') ||
    fail "the bash completions do not load"
[[ $complete == *" uvs"$'\n'*" uvsadm" ]] || fail "bash: complete -p says: $complete"
if command -v zsh >/dev/null; then
    comps=$(zsh -fc 'autoload -Uz compinit && compinit -u -D &&
        source /usr/share/zsh/vendor-completions/_uvs &&
        source /usr/share/zsh/vendor-completions/_uvsadm && print -r -- $_comps[uvs] $_comps[uvsadm]') ||
        fail "the zsh completions do not load"
    [[ $comps == "_uvs _uvsadm" ]] || fail "zsh: the completions are '$comps'"
else
    note "zsh is not installed: its completions not run"
fi
if command -v fish >/dev/null; then
    for c in uvs uvsadm; do
        comps=$(fish -c "source /usr/share/fish/vendor_completions.d/$c.fish; complete -c $c") ||
            fail "the fish completions of $c do not load"
        [[ -n $comps ]] || fail "fish: no completions for $c"
    done
else
    note "fish is not installed: its completions not run"
fi

# The units: valid, and only uvs.service enabled (by deb-systemd-helper, even where
# systemd is not running).
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /usr/lib/systemd/system/uvs.service \
        /usr/lib/systemd/system/uvs-kernel.service >"$work/verify.log" 2>&1 || {
        cat "$work/verify.log" >&2
        fail "systemd-analyze verify refuses the units"
    }
else
    note "systemd-analyze is not installed: the units not verified"
fi
[[ $(readlink /etc/systemd/system/multi-user.target.wants/uvs.service) == */uvs.service ]] ||
    fail "uvs.service is not enabled"
[[ ! -e /etc/systemd/system/multi-user.target.wants/uvs-kernel.service ]] ||
    fail "uvs-kernel.service is enabled"

# The system user.
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd uvs) || fail "no user uvs"
((uid < 1000)) || fail "uvs is not a system user (uid $uid)"
[[ $(getent group uvs | cut -d: -f3) == "$gid" ]] || fail "uvs's group is not uvs"
[[ $home == /nonexistent && $shell == */nologin ]] || fail "uvs has home $home, shell $shell"

# The daemon as uvs.service runs it, without systemd: user uvs, CAP_NET_BIND_SERVICE
# its one capability, the shipped uvs.toml, its socket in a directory of uvs's own
# (RuntimeDirectory), where root's uvsadm reaches it; a service on a free low port of
# loopback is listened on. Only the metrics port differs (any free one).
rundir=$(mktemp -d /tmp/uvs-package-test.XXXXXX)
chown uvs:uvs "$rundir" && chmod 0755 "$rundir"
setpriv --reuid=uvs --regid=uvs --init-groups --no-new-privs \
    --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
    --bounding-set=-all,+net_bind_service \
    /usr/sbin/uvs run --socket "$rundir/uvs.sock" -c /etc/uvs/uvs.toml --metrics 127.0.0.1:0 \
    >"$work/daemon.log" 2>&1 &
daemon=$!
for ((i = 0; i < 300; i++)); do
    [[ -S $rundir/uvs.sock ]] && break
    kill -0 "$daemon" 2>/dev/null || { cat "$work/daemon.log" >&2; fail "uvs run as uvs exited"; }
    sleep 0.1
done
listing=$(UVS_SOCKET=$rundir/uvs.sock /usr/sbin/uvsadm -L -n) && grep -q '^IP Virtual Server' <<<"$listing" ||
    { cat "$work/daemon.log" >&2; fail "root's uvsadm does not reach the daemon of uvs"; }
port=
for p in $(shuf -i 600-1023); do
    [[ -z $(ss -Htln "sport = :$p") ]] && { port=$p; break; }
done
[[ -n $port ]] || fail "no free port below 1024 on loopback"
UVS_SOCKET=$rundir/uvs.sock /usr/sbin/uvsadm -A -t "127.0.0.1:$port" -s rr
for ((i = 0; i < 300; i++)); do
    [[ -n $(ss -Htln "src 127.0.0.1:$port") ]] && break
    sleep 0.1
done
[[ -n $(ss -Htln "src 127.0.0.1:$port") ]] ||
    { cat "$work/daemon.log" >&2; fail "uvs, as uvs, does not listen on low port $port"; }
kill -TERM "$daemon"
wait "$daemon" || { cat "$work/daemon.log" >&2; fail "uvs run did not stop cleanly"; }
daemon=
rm -rf "$rundir"

# The ipvsadm alternative. With no daemon at $UVS_SOCKET, ipvsadm must be uvsadm
# saying so (ipvsadm would say "Can't initialize ipvs: Protocol not available" or list
# the kernel's table).
real_ipvsadm=$(sha256sum /usr/sbin/ipvsadm 2>/dev/null | cut -d' ' -f1 || true)
sock=$work/uvs.sock
alt=/usr/share/uvs/ipvsadm-alternative
reaches_uvsadm() {
    local out rc=0
    out=$(UVS_SOCKET=$sock "$@" 2>&1) || rc=$?
    ((rc == 2)) && [[ $out == *"cannot reach the uvs daemon at $sock"* ]] ||
        fail "$* (exit $rc) is not uvsadm: $out"
}
[[ $($alt status) == "alternative ipvsadm: off" ]] || fail "the alternative is on at install"
$alt enable >/dev/null || fail "$alt enable failed"
for link in /usr/sbin/ipvsadm /sbin/ipvsadm /usr/sbin/ipvsadm-save; do
    [[ $(readlink -f "$link") == /usr/sbin/uvsadm ]] || fail "$link is not uvsadm"
done
reaches_uvsadm /usr/sbin/ipvsadm -L -n
reaches_uvsadm /sbin/ipvsadm -L -n
reaches_uvsadm /usr/sbin/ipvsadm-save -n
if [[ -n $real_ipvsadm ]]; then
    [[ $(sha256sum /usr/sbin/ipvsadm.ipvsadm | cut -d' ' -f1) == "$real_ipvsadm" ]] ||
        fail "the real ipvsadm is not at /usr/sbin/ipvsadm.ipvsadm"
    note "this machine's ipvsadm package was diverted to /usr/sbin/ipvsadm.ipvsadm and put back"
fi
$alt disable >/dev/null || fail "$alt disable failed"
[[ $($alt status) == "alternative ipvsadm: off" ]] || fail "the alternative is still on"
[[ $(sha256sum /usr/sbin/ipvsadm 2>/dev/null | cut -d' ' -f1 || true) == "$real_ipvsadm" ]] ||
    fail "/usr/sbin/ipvsadm is not what it was before the alternative"

# Purge with the alternative on: everything goes.
$alt enable >/dev/null || fail "$alt enable failed (second time)"
dpkg-query -L uvs | grep -v '^/\.$' >"$work/installed"
sort -u "$work/contents" >"$work/contents.sorted"
[[ -z $(sort -u "$work/installed" | comm -13 "$work/contents.sorted" -) ]] ||
    fail "dpkg -L lists paths the .deb does not hold"
note "dpkg --purge uvs"
dpkg --purge uvs >"$work/dpkg.log" 2>&1 || {
    cat "$work/dpkg.log" >&2
    fail "dpkg --purge failed"
}
left=$(grep -vxFf "$work/preexisting" "$work/installed" | while read -r p; do
    [[ -e $p || -L $p ]] && echo "$p"
done || true)
[[ -z $left ]] || fail "dpkg --purge left: $left"
snapshot | sort >"$work/after"
diff -u "$work/before" "$work/after" >&2 || fail "the purge did not put back what uvs changed (diff above)"
note "ok: built, installed, checked, alternative on and off, purged clean"
