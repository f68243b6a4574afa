#!/usr/bin/env bash
# Kernel mode against a real IPVS kernel: boots shared/ipvs-vm (Debian's kernel under
# qemu; it installs what it needs on first use) and runs tests/kernel/in-vm.sh there
# with this build's uvs and uvsadm. Run by .ci/run; IPVS_VM points at ipvs-vm.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
vm=${IPVS_VM:-../shared/ipvs-vm/ipvs-vm.sh}
cargo build --release
"$vm" -t 300 -f target/release/uvs=/opt/uvs/uvs -f target/release/uvsadm=/opt/uvs/uvsadm \
    tests/kernel/in-vm.sh
cargo build --example many_clients && "$vm" -t 600 -c 2 -f "${CARGO_TARGET_DIR:-target}/release/uvs=/opt/uvs/uvs" -f "${CARGO_TARGET_DIR:-target}/release/uvsadm=/opt/uvs/uvsadm" -f "${CARGO_TARGET_DIR:-target}/debug/examples/many_clients=/opt/uvs/many_clients" tests/kernel/sync-in-vm.sh
