"""The plugin service's warm-up: the most common call run a few times before any fork.

Preloading imports the plugins' code but runs none of it, so every worker would execute
it for the first time: CPython then adapts each function's bytecode as it runs it
(quickening, specialised instructions, lazily built caches), and all of that is done
again, and its pages copied, in every worker. Run in the service first, it is done once
and the workers inherit it.

The warm-up is bridge + host-local ADD and DEL, as a warm worker runs them (delegate in
the same process, namespace switches in the calling thread), ``ROUNDS`` times, entirely
inside two network namespaces of its own (a "node" and a "pod"), made by a thread that
unshares its network namespace: the service's own namespace, its files and the node's
network are never touched. Leases go to a temporary directory, removed at the end; the
namespaces, and the bridge and veths in them, go away when the thread ends. Anything
that fails only skips the rest of the warm-up.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from importlib import import_module
from typing import NoReturn

from ._lib import netns

# enough calls for CPython 3.11 to quicken and specialise a function run once per call
ROUNDS = 10
BRIDGE = "cni-warm0"
SUBNET = "10.255.255.0/24"


class WarmUpError(Exception):
    """The warm-up could not run; the service goes on without it."""


class _Stranded(BaseException):
    """The warm-up thread could not switch back: it ends (its namespaces are its own)."""


def _stranded(exc: BaseException) -> NoReturn:
    raise _Stranded(exc)


def _unshare_net() -> None:
    if netns._LIBC.unshare(netns.CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise WarmUpError(f"cannot make a network namespace: {os.strerror(err)}")


def _conf(data_dir: str) -> bytes:
    ipam = {"type": "host-local", "subnet": SUBNET, "dataDir": data_dir}
    conf = {
        "cniVersion": "1.0.0",
        "name": "pycni-warm-up",
        "type": "bridge",
        "bridge": BRIDGE,
        "isGateway": True,
        "ipMasq": False,
        "ipam": ipam,
    }
    return json.dumps(conf).encode()


def _calls(tmp: str) -> None:
    """ROUNDS bridge + host-local ADD/DEL pairs, in this thread's own namespaces."""
    from cnitool import launchers, skel
    from cnitool.invoke import delegate

    bin_dir = os.path.join(tmp, "bin")
    launchers.install(bin_dir, ["host-local"], kind="python", compile_bytecode=False)
    _unshare_net()  # this thread's "node"
    node = netns.current_netns()
    try:
        _unshare_net()  # the "pod"
        pod = netns.current_netns()
        try:
            netns.setns(node)
            plugin = import_module(f"{__package__}.bridge.__main__").PLUGIN
            conf = _conf(os.path.join(tmp, "leases"))
            delegate.enable_in_process()
            netns.switch_calling_thread(_stranded)
            try:
                for i in range(ROUNDS):
                    for command in ("ADD", "DEL"):
                        env = {
                            "CNI_COMMAND": command,
                            "CNI_CONTAINERID": f"pycni-warm-up-{i}",
                            "CNI_NETNS": f"/proc/self/fd/{pod}",
                            "CNI_IFNAME": "eth0",
                            "CNI_PATH": bin_dir,
                            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                        }
                        out, code = skel.run(plugin, env, conf, io.StringIO())
                        if code != 0:
                            raise WarmUpError(
                                f"bridge {command} failed: {out.decode(errors='replace')}"
                            )
            finally:
                netns.switch_calling_thread(None)
                delegate.enable_in_process(False)
        finally:
            os.close(pod)
    finally:
        os.close(node)


def _thread_body(box: dict[str, BaseException]) -> None:
    tmp = tempfile.mkdtemp(prefix="pycni-warm-up-")
    try:
        _calls(tmp)
    except BaseException as exc:  # reported by warm_up; the thread just ends
        box["error"] = exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def warm_up(log: Callable[[str], None]) -> None:
    """Run the warm-up in a thread of its own and wait for it; log why when it could not
    run (not root, no network namespaces)."""
    box: dict[str, BaseException] = {}
    thread = threading.Thread(target=_thread_body, args=(box,), name="pycni-warm-up")
    thread.start()
    thread.join()
    if "error" in box:
        exc = box["error"]
        log(f"warm-up skipped: {exc.args[0] if isinstance(exc, _Stranded) else exc}")
