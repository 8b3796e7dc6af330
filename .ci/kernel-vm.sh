#!/usr/bin/env bash
# The kernel-feature tests (pytest marker "kernel": ipvlan, 802.1q vlan, dummy, bridge
# vlan_filtering) in one throwaway VM: a stock Debian kernel under QEMU with this machine's
# root shared read-only (.ci/vm-run.sh), because the CI machines' own kernel lacks those
# link types. The kernel is downloaded and extracted, never installed. Exits with pytest's
# status inside the VM; 125 when the VM never reported (it did not boot): a failure, never
# a skip. Inside, PYCNI_KERNEL_REQUIRED=1 makes a missing feature fail rather than skip.
#
# usage: .ci/kernel-vm.sh [pytest args...]   (root; after .ci/common.sh's set-up)
# env: PYCNI_VM_KERNEL_DIR (default /var/cache/pycni/vmkernel), PYCNI_VM_TIMEOUT (s, 1200)

source "$(dirname "$0")/common.sh"

# fetch_vm_kernel: the kernel linux-image-amd64 depends on, extracted under
# $PYCNI_VM_KERNEL_DIR/<version> with its module index (kept for the next run); sets
# KIMG and MODDIR
fetch_vm_kernel() {
    local pkg ver root dir tmp
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    if [[ -z "$pkg" ]]; then
        apt-get update -qq
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    fi
    [[ -n "$pkg" ]] || { echo "kernel-vm: no linux-image-amd64 in apt" >&2; return 1; }
    ver=${pkg#linux-image-}
    root=${PYCNI_VM_KERNEL_DIR:-/var/cache/pycni/vmkernel}
    dir=$root/$ver
    if [[ ! -f "$dir/boot/vmlinuz-$ver" ]]; then
        log "kernel-vm: apt-get download $pkg (extracted to $dir, not installed)"
        mkdir -p "$root"
        tmp=$(mktemp -d "$root/.fetch.XXXXXX")
        (cd "$tmp" && apt-get download -qq "$pkg") || { rm -rf "$tmp"; return 1; }
        dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"
        depmod -b "$tmp/x" "$ver"
        rm -rf "$dir"
        mv "$tmp/x" "$dir"
        rm -rf "$tmp"
    fi
    KIMG=$dir/boot/vmlinuz-$ver
    MODDIR=$dir/lib/modules/$ver
}

if [[ $(id -u) -ne 0 ]]; then
    echo "kernel-vm: must run as root" >&2
    exit 1
fi
install_apt "${APT_VM_PACKAGES[@]}"
fetch_vm_kernel || { echo "kernel-vm: no kernel for the VM" >&2; exit 1; }
cd "$REPO"
log "kernel-vm: $(basename "$KIMG") under QEMU (TCG): pytest -m kernel tests/netns $*"
export PYCNI_KERNEL_REQUIRED=1 PYTHONDONTWRITEBYTECODE=1
status=0
timeout "${PYCNI_VM_TIMEOUT:-1200}" env KIMG="$KIMG" MODDIR="$MODDIR" \
    VM_ENV="PYCNI_KERNEL_REQUIRED PYTHONDONTWRITEBYTECODE" \
    "$REPO/.ci/vm-run.sh" -- "$VENV/bin/python" -m pytest -p no:cacheprovider -q -rfEs --durations=5 \
    -m kernel tests/netns "$@" || status=$?
case $status in
    0) echo "kernel-vm: the kernel-feature tests passed in the VM" >&2 ;;
    124) echo "kernel-vm: timed out" >&2 ;;
    125) echo "kernel-vm: the VM never reported (boot failure?)" >&2 ;;
    *) echo "kernel-vm: pytest in the VM exited $status" >&2 ;;
esac
exit $status
