# Shared set-up for .ci/run and .ci/demo: Debian packages and a venv with the project.
# Sourced, not run. Needs root (apt-get); safe to run again (skips what is there).

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PYCNI_VENV:-$REPO/.venv}"
# gcc, libc6-dev and python3-dev: python-iptables is published only as source with a C
# extension, so pip builds it; musl-tools: the native plugin launchers are built with
# musl-gcc, whose programs start faster than glibc's (see cnitool/launchers.py)
APT_PACKAGES=(python3-venv python3-pip python3-dev gcc libc6-dev musl-tools iproute2 iptables nftables conntrack containernetworking-plugins)
# what only the tests need: real runtimes (podman on runc, containerd's CRI) and a static
# busybox for a container's root file system and the sandbox's pause image; dnsmasq-base
# (the binary without the service package) as the dhcp tests' DHCP server; Go and Debian's
# libcni sources to build bench/golibcni, the Go libcni driver of tests/e2e/test_go_libcni.py
APT_TEST_PACKAGES=(podman runc containerd busybox-static time dnsmasq-base golang-go golang-github-appc-cni-dev)
# the kernel-feature tests' VM (.ci/kernel-vm.sh): QEMU, a static busybox for its
# initramfs, depmod for the downloaded kernel's modules
APT_VM_PACKAGES=(qemu-system-x86 busybox-static kmod)

log() { printf '\n==> %s\n' "$*" >&2; }

# install_apt [extra packages]: the packages every set-up needs, plus the given ones
install_apt() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# install_project [extras] [editable]: a venv at $VENV with the project installed. The
# demo installs a copy, as a node would; the tests use an editable install, so what they
# exec (plugin launchers, cnitool) runs the checkout's code, as pytest itself does.
install_project() {
    local spec="$REPO" mode=()
    [[ -n "${1:-}" ]] && spec="$REPO[$1]"
    [[ "${2:-}" == editable ]] && mode=(-e)
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "python3 -m venv $VENV"
        python3 -m venv "$VENV"
    fi
    log "pip install ${mode[*]} $spec"
    "$VENV/bin/python" -m pip uninstall -q -y pycni >/dev/null 2>&1 || true
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${mode[@]}" "$spec"
}
