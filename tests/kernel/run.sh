#!/usr/bin/env bash
# Kernel mode against a real IPVS kernel: boots shared/ipvs-vm (Debian's kernel under
# qemu; it installs what it needs on first use) and runs tests/kernel/in-vm.sh there
# with this build's uvs and uvsadm. Run by .ci/run; IPVS_VM points at ipvs-vm.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
vm=${IPVS_VM:-../shared/ipvs-vm/ipvs-vm.sh}
cargo build --release
golden=()
for f in tests/golden/daemon_*; do golden+=(-f "$f=/opt/uvs/golden/"); done
"$vm" -t 300 -f target/release/uvs=/opt/uvs/uvs -f target/release/uvsadm=/opt/uvs/uvsadm \
    "${golden[@]}" tests/kernel/in-vm.sh
