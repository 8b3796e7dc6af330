"""The first thing a launcher runs: answer VERSION, or pick the warm or the cold path.

Copied verbatim into every launcher, like :mod:`cnitool.warm.client`, and as cheap as
possible, because the cold path (no service) must cost what it cost before the warm
path existed: the launcher carries the client's source as a string constant (which
costs next to nothing to compile) and compiles it only when a service socket is there.
Imports: ``os`` and ``sys`` only (both already loaded by the interpreter).
"""

import os
import sys

DEFAULT_SOCKET = "/run/pycni/plugins.sock"


def service_socket() -> str | None:
    """The service's socket path when a call may go there: we are root, and the path is
    a socket owned by root (anything else is never handed a call)."""
    if os.geteuid() != 0:
        return None
    path = os.environ.get("PYCNI_SOCKET") or DEFAULT_SOCKET
    try:
        st = os.stat(path)
    except OSError:
        return None
    if (st.st_mode & 0o170000) != 0o140000 or st.st_uid != 0:
        return None
    return path


def load_site() -> None:
    """The site module the shebang's ``-S`` left out (the environment's site-packages,
    where the plugins are installed): only the cold path, which runs them here, needs it."""
    if sys.flags.no_site:
        import site

        site.main()


def route(package: str, answer: bytes | None, tag: str, client_source: str) -> None:
    """Answer VERSION from ``answer``; with a service socket, run the client (forward the
    call, or fall back cold itself); without, run the plugin here. Exits the process."""
    if answer is not None and os.environ.get("CNI_COMMAND") == "VERSION":
        sys.stdout.buffer.write(answer)
        sys.stdout.buffer.flush()
        raise SystemExit(0)
    # no service, or not a CNI call: runtimes pass no arguments, so a launcher given some
    # runs a command of the plugin's own (``dhcp daemon``, a long-lived process): cold
    if service_socket() is None or len(sys.argv) > 1:
        load_site()
        from cnitool_plugins._launch import run

        run(package)
    client: dict[str, object] = {"__name__": "pycni_launcher_client"}
    exec(compile(client_source, "<pycni launcher client>", "exec"), client)
    run_client = client["run"]
    assert callable(run_client)
    run_client(package, answer, tag)
