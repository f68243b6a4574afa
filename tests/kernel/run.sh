#!/usr/bin/env bash
# Kernel mode against a real IPVS kernel: boots shared/ipvs-vm (Debian's kernel under
# qemu; it installs what it needs on first use) and runs tests/kernel/in-vm.sh there
# with this build's uvs and uvsadm. A second boot runs tests/kernel/mh-in-vm.sh: the
# kernel's mh, sh and dh pick, client by client, the real server uvs picks in userspace
# mode (its clients and servers are examples/many_clients). Run by .ci/run; IPVS_VM
# points at ipvs-vm.sh, CARGO_TARGET_DIR (default target) at the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
vm=${IPVS_VM:-../shared/ipvs-vm/ipvs-vm.sh}
target=${CARGO_TARGET_DIR:-target}
cargo build --release
cargo build --example many_clients
golden=()
for f in tests/golden/daemon_*; do golden+=(-f "$f=/opt/uvs/golden/"); done
"$vm" -t 300 -f "$target/release/uvs=/opt/uvs/uvs" -f "$target/release/uvsadm=/opt/uvs/uvsadm" \
    "${golden[@]}" tests/kernel/in-vm.sh
"$vm" -t 300 -c 2 -f "$target/release/uvs=/opt/uvs/uvs" -f "$target/release/uvsadm=/opt/uvs/uvsadm" \
    -f "$target/debug/examples/many_clients=/opt/uvs/many_clients" tests/kernel/mh-in-vm.sh
"$vm" -t 300 -c 2 -f "$target/release/uvs=/opt/uvs/uvs" -f "$target/release/uvsadm=/opt/uvs/uvsadm" \
    -f "$target/debug/examples/many_clients=/opt/uvs/many_clients" tests/kernel/sync-in-vm.sh
