"""Plugin launchers: small executables in a CNI bin dir that start our Python plugins.

A runtime finds a plugin by file name in CNI_PATH, so each plugin needs an executable
named exactly like the reference one (``bridge``, ``host-local``, ...). Those are never
installed as console scripts on ``$PATH`` (``bridge`` would shadow iproute2's). A launcher
looks like this::

    #!/abs/path/to/python -IS
    # pycni plugin launcher: host-local (managed by cnitool; reinstall or remove with it)
    PACKAGE = "host_local"
    TAG = "0.1.0"
    ANSWER = b'{"cniVersion":"1.1.0","supportedVersions":[...]}\n'
    CLIENT = r'''<the source of cnitool.warm.client>'''
    <the source of cnitool.warm.router>
    route(PACKAGE, ANSWER, TAG, CLIENT)

It is thin: stdlib only on its warm path. It answers VERSION itself from ``ANSWER`` (what
the plugin printed for VERSION at install time; None for a plugin whose versions depend
on the call), forwards every other call to the plugin service (``cnitool serve``) when
one is up, and otherwise runs the plugin in its own interpreter (``cnitool_plugins._launch``,
the cold path). The client stays a string until a service socket is found, so the cold
path does not pay for compiling it. ``TAG`` is this installation's version: a service of
another version leaves the call to the cold path. Launchers written before the warm path (two lines:
``from cnitool_plugins._launch import run`` and ``run("<package>")``) are still
recognised as ours.

Interpreter choice: the given interpreter path is made absolute. When it belongs to a
virtual environment (a ``pyvenv.cfg`` next to it or one directory up) the path is kept
as is, symlinks included, because Python finds the environment's site-packages from the
path it was started as; otherwise symlinks are resolved. A path that is a script rather
than a binary (a pyenv shim costs ~130 ms per call) is refused, as is one that cannot be
written on a shebang line (whitespace, or longer than the kernel's limit). ``-IS`` (one
argument: the kernel passes the rest of the line as one) keeps the caller's PYTHON*
variables, user site-packages and working directory out of the plugin, and skips the site
module on VERSION and the warm path; the cold path loads it before the plugin.

Native launchers (``kind="native"``, the default when a C compiler is there): the
interpreter start is most of a warm call's cost (~9 ms of a ~20 ms bridge ADD), so the
same router and client also exist as a small C program (``cnitool/warm/native.c``),
compiled once per install and written once per plugin, each copy followed by a trailer
(:func:`native_trailer`): the interpreter, the package, the tag, the VERSION answer and
the cold path's script. It answers VERSION and forwards calls without starting Python,
and execs the interpreter on the cold path (``python -IS -c <script>``, stdin replayed).
Without a compiler (``auto``) the Python launcher is written instead; it does the same.

Launchers carry a marker line (a native one in its trailer's cold script); :func:`install` refuses to overwrite any other file
unless forced, and :func:`remove` only deletes files carrying the marker. Writes are
atomic (temporary file in the same directory, then rename) with mode 0755. Installing
also byte-compiles the installed packages, so an environment with PYTHONDONTWRITEBYTECODE
or a read-only ``__pycache__`` does not recompile on every exec (a source checkout behind
an editable install is left as it is).
"""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cnitool.files import write_atomic
from cnitool.spec.errors import INVALID_ENVIRONMENT, CNIError

PLUGIN_PACKAGE = "cnitool_plugins"
# the interpreter's flags on the shebang line (one argument: Linux passes the rest of the
# line as one): isolated from the caller's PYTHON* variables, user site and working
# directory, and without the site module, whose .pth files cost milliseconds that VERSION
# and the warm path do not need; the cold path loads it itself (``router``)
FLAGS = "-IS"
MARKER = "# pycni plugin launcher"
LAUNCHER_MODE = 0o755
RAW_QUOTE = "'" * 3  # the launcher holds the client's source in a raw string
# Linux reads at most this many bytes of a "#!" line (BINPRM_BUF_SIZE, kernel >= 5.1)
SHEBANG_MAX = 255

# the end of a native launcher: u32 length of the fields, then this magic
TRAILER_MAGIC = b"\0PYCNI-L"
ELF_MAGIC = b"\x7fELF"
LAUNCHER_KINDS = ("auto", "native", "python")
# flags for the C compiler: optimised, stripped, warnings are errors (a broken build is
# reported, never installed); linked statically when the C library allows it, which saves
# the dynamic loader's work at every exec (0.2-0.3 ms of CPU), else dynamically
CFLAGS = ("-O2", "-s", "-Wall", "-Wextra", "-Werror")
STATIC_CFLAGS = (*CFLAGS, "-static")

# executable name (as the reference plugin is called) -> package under cnitool_plugins
PLUGINS: dict[str, str] = {
    "bridge": "bridge",
    "host-local": "host_local",
    "loopback": "loopback",
    "ptp": "ptp",
    "portmap": "portmap",
    "flannel": "flannel",
    "macvlan": "macvlan",
    "ipvlan": "ipvlan",
    "vlan": "vlan",
    "tuning": "tuning",
    "dhcp": "dhcp",
    "noop": "noop",
}


class LauncherError(CNIError):
    """A launcher could not be written or an argument is invalid."""


@dataclass(frozen=True)
class InstallAction:
    """What :func:`install` did for one launcher (``kind="launcher"``) or for the
    byte-compile step (``kind="bytecode"``).

    ``action`` is one of ``installed``, ``updated``, ``unchanged``, ``replaced``
    (a foreign file overwritten with ``force``), ``refused`` (a foreign file kept),
    ``skipped`` (the plugin package is not available), or for bytecode ``compiled``,
    ``failed`` or ``skipped`` (a source checkout, see :func:`compile_packages`).
    """

    name: str
    path: str
    action: str
    detail: str = ""
    kind: str = "launcher"


@dataclass(frozen=True)
class LauncherStatus:
    """One plugin name in a bin dir: ``state`` is ``ours``, ``foreign`` or ``missing``.

    For ``ours``, ``interpreter`` is the shebang's interpreter, ``package`` the package
    the launcher runs and ``interpreter_ok`` whether that interpreter still exists.
    """

    name: str
    path: str
    state: str
    package: str = ""
    interpreter: str = ""
    interpreter_ok: bool = False
    launcher: str = ""


@dataclass(frozen=True)
class RemoveAction:
    """What :func:`remove` did: ``removed``, ``kept-foreign`` or ``missing``."""

    name: str
    path: str
    action: str


def _in_venv(python: str) -> bool:
    bin_dir = os.path.dirname(python)
    return any(
        os.path.isfile(os.path.join(d, "pyvenv.cfg")) for d in (bin_dir, os.path.dirname(bin_dir))
    )


def interpreter_path(python: str = sys.executable) -> str:
    """The interpreter path to write on the shebang line (see the module docstring)."""
    if not python:
        raise LauncherError("no Python interpreter given (sys.executable is empty)")
    path = os.path.abspath(python)
    if not _in_venv(path):
        path = os.path.realpath(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise LauncherError(f"cannot read interpreter {path}: {exc.strerror or exc}") from None
    if head.startswith(b"#!"):
        raise LauncherError(
            f"interpreter {path} is a script (a pyenv shim?), not a Python binary; "
            "pass the real interpreter (python -c 'import sys; print(sys.executable)')"
        )
    if not os.access(path, os.X_OK):
        raise LauncherError(f"interpreter {path} is not executable")
    if any(ch.isspace() for ch in path):
        raise LauncherError(
            f"interpreter path {path!r} contains whitespace; a shebang cannot hold it"
        )
    if len(f"#!{path} {FLAGS}".encode()) > SHEBANG_MAX:
        raise LauncherError(
            f"interpreter path {path} is too long for a shebang line ({SHEBANG_MAX} bytes max)"
        )
    return path


def version_answer(package: str) -> bytes | None:
    """What the plugin prints for VERSION, or None when that depends on the call (a
    plugin with ``dynamic_versions``) or the plugin cannot be loaded."""
    from importlib import import_module

    from . import skel

    try:
        plugin = import_module(f"{PLUGIN_PACKAGE}.{package}.__main__").PLUGIN
    except Exception:
        return None
    if not isinstance(plugin, skel.Plugin) or plugin.dynamic_versions is not None:
        return None
    out, code = skel.run(plugin, {"CNI_COMMAND": "VERSION"}, b"")
    return out if code == 0 else None


def _module_source(name: str) -> str:
    """The source of ``cnitool.warm.<name>`` (``router`` or ``client``), read once."""
    if name not in _SOURCES:
        from importlib import import_module

        path = import_module(f"{__package__}.warm.{name}").__file__
        assert path is not None
        with open(path, encoding="utf-8") as fh:
            _SOURCES[name] = fh.read()
    return _SOURCES[name]


_SOURCES: dict[str, str] = {}


def launcher_text(
    name: str, python: str, answer: bytes | None = None, libdir: str | None = None
) -> str:
    """The launcher file for executable ``name`` run by interpreter ``python`` (as is);
    ``answer`` is its VERSION output (see the module docstring). ``libdir`` is a
    directory holding the packages, put first on ``sys.path`` (for an interpreter that
    does not have them installed, see :mod:`cnitool.nodeinstall`)."""
    from . import __version__

    package = PLUGINS[name]
    client = _module_source("client")
    if RAW_QUOTE in client or client.endswith("\\"):
        raise LauncherError("the launcher client cannot be quoted as a raw string")
    return (
        f"#!{python} {FLAGS}\n"
        f"{MARKER}: {name} (managed by cnitool; reinstall or remove with it)\n"
        f'PACKAGE = "{package}"\n'
        f'TAG = "{__version__}"\n'
        f"ANSWER = {answer!r}\n"
        "# the warm path's client, compiled only when a plugin service is there\n"
        f"CLIENT = r{RAW_QUOTE}{client}{RAW_QUOTE}\n"
        f"{_module_source('router')}\n"
        + (f"sys.path.insert(0, {libdir!r})\n" if libdir else "")
        + "route(PACKAGE, ANSWER, TAG, CLIENT)\n"
    )


def cold_script(name: str, package: str, libdir: str | None = None) -> str:
    """What a native launcher's interpreter runs on the cold path (``python -IS -c``):
    the launcher's argv without ``-c``, the site module ``-S`` left out, ``libdir``
    first on ``sys.path`` when given (as :func:`launcher_text`), then the plugin."""
    return (
        f"{MARKER}: {name} (native; managed by cnitool; reinstall or remove with it)\n"
        "import sys\n"
        "del sys.argv[0]\n"
        "import site\n"
        "site.main()\n"
        + (f"sys.path.insert(0, {libdir!r})\n" if libdir else "")
        + "from cnitool_plugins._launch import run\n"
        f'run("{package}")\n'
    )


def native_trailer(
    name: str,
    python: str,
    answer: bytes | None = None,
    tag: str | None = None,
    libdir: str | None = None,
) -> bytes:
    """The fields a native launcher reads from its own end: interpreter, package, tag,
    VERSION answer and cold script, each a little-endian u32 length (0xffffffff: absent)
    and its bytes, then the length of them all and :data:`TRAILER_MAGIC`. ``tag``
    defaults to this installation's version; ``libdir`` as for :func:`cold_script`."""
    from . import __version__

    package = PLUGINS[name]
    fields: list[bytes | None] = [
        python.encode(),
        package.encode(),
        (tag or __version__).encode(),
        answer,
        cold_script(name, package, libdir).encode(),
    ]
    body = b"".join(
        b"\xff\xff\xff\xff" if f is None else len(f).to_bytes(4, "little") + f for f in fields
    )
    return body + len(body).to_bytes(4, "little") + TRAILER_MAGIC


def parse_trailer(data: bytes) -> tuple[str, str, str] | None:
    """(interpreter, package, tag) of a native launcher's bytes, or None if not one."""
    if not data.startswith(ELF_MAGIC):
        return None
    return _trailer_fields(data)


def _trailer_fields(data: bytes) -> tuple[str, str, str] | None:
    """(interpreter, package, tag) from the trailer that ends ``data`` (a native launcher
    or its last bytes), or None."""
    if not data.endswith(TRAILER_MAGIC):
        return None
    end = len(data) - len(TRAILER_MAGIC) - 4
    size = int.from_bytes(data[end : end + 4], "little")
    if size > end:
        return None
    pos, fields = end - size, []
    for _ in range(5):
        if pos + 4 > end:
            return None
        n = int.from_bytes(data[pos : pos + 4], "little")
        pos += 4
        if n == 0xFFFFFFFF:
            fields.append(b"")
            continue
        if pos + n > end:
            return None
        fields.append(data[pos : pos + n])
        pos += n
    python, package, tag, _answer, script = (f.decode("utf-8", "replace") for f in fields)
    if not script.startswith(MARKER):
        return None
    return python, package, tag


# Compilers a native launcher is built with, in order of preference after ``$CC``. musl's
# wrapper comes first: a program linked with musl starts with a handful of system calls,
# while glibc's start-up probes the CPU's caches with CPUID, which traps to the hypervisor
# on a virtual machine (0.7 ms of CPU per exec against 0.1 ms on the machines we measured,
# every plugin call). The launcher uses only POSIX calls, which both libraries have.
COMPILERS = ("musl-gcc", "cc", "gcc")


def find_compilers() -> list[str]:
    """The C compilers a native launcher may be built with, in order: ``$CC``, then those
    of :data:`COMPILERS`, each when found on the PATH."""
    import shutil

    found = (shutil.which(c) for c in (os.environ.get("CC", ""), *COMPILERS) if c)
    return list(dict.fromkeys(f for f in found if f))


def find_compiler() -> str | None:
    """The first of :func:`find_compilers`, or None."""
    found = find_compilers()
    return found[0] if found else None


_BUILT: dict[str, bytes] = {}


def build_native(cc: str) -> bytes:
    """The native launcher program built from ``warm/native.c`` by ``cc`` (once per
    process); LauncherError with the compiler's message when the build fails."""
    if cc in _BUILT:
        return _BUILT[cc]
    import subprocess

    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "warm", "native.c")
    if not os.path.isfile(source):
        raise LauncherError(f"the native launcher's source {source} is missing")
    with tempfile.TemporaryDirectory(prefix="pycni-launcher-") as tmp:
        out = os.path.join(tmp, "launcher")
        try:
            for flags in (STATIC_CFLAGS, CFLAGS):  # no static C library: dynamic
                proc = subprocess.run(
                    [cc, *flags, "-o", out, source], capture_output=True, text=True, timeout=120
                )
                if proc.returncode == 0:
                    break
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LauncherError(f"cannot run the C compiler {cc}: {exc}") from None
        if proc.returncode != 0:
            tail = proc.stderr.strip()[-800:]
            raise LauncherError(f"building the native launcher with {cc} failed: {tail}")
        with open(out, "rb") as fh:
            _BUILT[cc] = fh.read()
    return _BUILT[cc]


def read_native_program(path: str) -> bytes:
    """A native launcher program built beforehand (``warm/native.c`` compiled, no
    trailer), as an image ships it; LauncherError when ``path`` is not one."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise LauncherError(f"cannot read the native launcher program {path}: {exc}") from None
    if not data.startswith(ELF_MAGIC):
        raise LauncherError(f"{path} is not a native launcher program (not an ELF file)")
    if _trailer_fields(data) is not None:
        raise LauncherError(
            f"{path} is an installed launcher, not the program",
            "give the program built from cnitool/warm/native.c",
        )
    return data


def _read_head(path: str) -> bytes | None:
    """The first bytes of a regular file (not following symlinks); None if not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        return fh.read(1024)


# the largest trailer read (the C side's TRAILER_MAX)
TRAILER_LIMIT = 1 << 20


def _read_tail(path: str) -> bytes | None:
    """A regular file's trailer: its last bytes, as many as the size before the trailer
    magic says (not following symlinks); None when that cannot be."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        fixed = 4 + len(TRAILER_MAGIC)
        if not stat.S_ISREG(st.st_mode) or st.st_size < fixed:
            return None
        size = int.from_bytes(os.pread(fd, 4, st.st_size - fixed), "little")
        if size > TRAILER_LIMIT or size + fixed > st.st_size:
            return None
        return os.pread(fd, size + fixed, st.st_size - size - fixed)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Info:
    """What one of our launchers says of itself; ``kind`` is ``native`` or ``python``."""

    interpreter: str
    package: str
    tag: str | None
    kind: str


def _launcher_info(path: str) -> _Info | None:
    """What our launcher at ``path`` runs, or None when the file is not one of ours."""
    head = _read_head(path)
    if head is None:
        return None
    if head.startswith(ELF_MAGIC):  # the trailer only: a static launcher is large
        tail = _read_tail(path)
        parsed = _trailer_fields(tail) if tail is not None else None
        return _Info(*parsed, kind="native") if parsed is not None else None
    script = _parse_launcher(head)
    if script is None:
        return None
    tag = None
    for line in head.decode("utf-8", "replace").splitlines()[2:8]:
        if line.startswith('TAG = "') and line.endswith('"'):
            tag = line[7:-1]
    return _Info(script[0], script[1], tag, kind="python")


def _parse_launcher(head: bytes) -> tuple[str, str] | None:
    """(interpreter, package) when ``head`` is one of our Python launchers, else None."""
    lines = head.decode("utf-8", "replace").splitlines()
    if len(lines) < 2 or not lines[0].startswith("#!") or not lines[1].startswith(MARKER):
        return None
    interpreter = lines[0][2:].split(" ", 1)[0]
    package = ""
    for line in lines[2:]:
        if line.startswith('PACKAGE = "') and line.endswith('"'):
            package = line[11:-1]  # a warm-path launcher
        elif line.startswith('run("') and line.endswith('")') and not package:
            package = line[5:-2]  # a launcher from before the warm path
    return interpreter, package


def is_ours(path: str) -> bool:
    """True when ``path`` is a launcher written by :func:`install`."""
    return _launcher_info(path) is not None


def launcher_package(path: str) -> str | None:
    """The plugin package the launcher at ``path`` runs, when it is one of ours written by
    this installation (same version, a known package); None otherwise."""
    from . import __version__

    info = _launcher_info(path)
    if info is None or info.package not in PLUGINS.values() or info.tag != __version__:
        return None
    return info.package


def package_available(package: str) -> bool:
    """Whether ``cnitool_plugins.<package>`` exists and has a ``__main__`` module,
    found without importing the plugin itself."""
    try:
        spec = importlib.util.find_spec(f"{PLUGIN_PACKAGE}.{package}")
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(
        os.path.isfile(os.path.join(loc, "__main__.py")) for loc in spec.submodule_search_locations
    )


def _select(names: Iterable[str] | None) -> list[str]:
    if names is None:
        return list(PLUGINS)
    chosen = list(dict.fromkeys(names))
    unknown = [n for n in chosen if n not in PLUGINS]
    if unknown:
        raise LauncherError(
            f"unknown plugin name(s): {', '.join(unknown)}",
            f"known: {', '.join(PLUGINS)}",
            code=INVALID_ENVIRONMENT,
        )
    return chosen


def package_dirs() -> list[str]:
    """Directories of the ``cnitool`` and ``cnitool_plugins`` packages."""
    dirs: list[str] = []
    for pkg in ("cnitool", PLUGIN_PACKAGE):
        spec = importlib.util.find_spec(pkg)
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(spec.submodule_search_locations)
    return dirs


def is_installed_copy(directory: str) -> bool:
    """Whether ``directory`` lies in this interpreter's site-packages (an installed copy),
    rather than in a source checkout that an editable install points at."""
    import sysconfig

    real = os.path.realpath(directory)
    for key in ("purelib", "platlib"):
        root = os.path.realpath(sysconfig.get_path(key))
        if real == root or real.startswith(root + os.sep):
            return True
    return False


def compile_packages() -> list[InstallAction]:
    """Byte-compile both packages (quietly); one action per package directory.

    A source checkout (an editable install, or tests run from the tree) is left alone:
    its ``__pycache__`` is the developer's, and a test run must not write into the tree.
    """
    import compileall  # ~10 ms; only installing needs it, not listing or removing

    out: list[InstallAction] = []
    for directory in package_dirs():
        if not is_installed_copy(directory):
            out.append(
                InstallAction(
                    "bytecode",
                    directory,
                    "skipped",
                    "a source checkout (editable install): not byte-compiled",
                    kind="bytecode",
                )
            )
            continue
        ok = compileall.compile_dir(directory, quiet=2)
        out.append(
            InstallAction(
                "bytecode",
                directory,
                "compiled" if ok else "failed",
                "" if ok else "some modules could not be compiled (run python -m compileall)",
                kind="bytecode",
            )
        )
    return out


def _native_program(kind: str) -> bytes | None:
    """The native launcher program for ``kind``, or None for Python launchers."""
    if kind not in LAUNCHER_KINDS:
        raise LauncherError(
            f"unknown launcher kind {kind!r}", f"one of: {', '.join(LAUNCHER_KINDS)}"
        )
    if kind == "python":
        return None
    compilers = find_compilers()
    if not compilers:
        if kind == "native":
            raise LauncherError(
                "no C compiler found (musl-gcc, cc, gcc or $CC) to build native launchers",
                "install musl-tools or gcc, or use Python launchers (--launcher python)",
            )
        return None
    failed: LauncherError | None = None
    for cc in compilers:  # a broken musl-gcc must not cost the native launcher
        try:
            return build_native(cc)
        except LauncherError as exc:
            failed = failed or exc
    if kind == "native" and failed is not None:
        raise failed
    return None


def install(
    bin_dir: str,
    names: Iterable[str] | None = None,
    python: str = sys.executable,
    force: bool = False,
    *,
    compile_bytecode: bool = True,
    kind: str = "auto",
    step: Callable[[str], None] | None = None,
) -> list[InstallAction]:
    """Write launchers into ``bin_dir`` (created if missing); one action per name.
    ``step`` is told each name as its launcher is written, then ``bytecode``.
    ``kind``: ``native`` (the C launcher; LauncherError without a working compiler),
    ``python``, or ``auto`` (native when a compiler is found, else python).

    With ``names`` None every plugin whose package is available is installed and the
    others are reported as ``skipped``; an explicitly named unavailable plugin is
    ``skipped`` too. Foreign files are ``refused`` unless ``force``.
    """
    chosen = _select(names)
    interp = interpreter_path(python)
    program = _native_program(kind)
    try:
        os.makedirs(bin_dir, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise LauncherError(f"cannot create {bin_dir}: {exc.strerror or exc}") from None
    actions: list[InstallAction] = []
    for name in chosen:
        if step is not None:
            step(name)
        path = os.path.join(bin_dir, name)
        package = PLUGINS[name]
        if not package_available(package):
            actions.append(
                InstallAction(
                    name, path, "skipped", f"package {PLUGIN_PACKAGE}.{package} is not available"
                )
            )
            continue
        answer = version_answer(package)
        if program is not None:
            data = program + native_trailer(name, interp, answer)
        else:
            data = launcher_text(name, interp, answer).encode()
        exists = os.path.lexists(path)
        ours = exists and is_ours(path)
        if exists and not ours:
            if not force:
                actions.append(
                    InstallAction(
                        name, path, "refused", "not a pycni launcher; use force to replace it"
                    )
                )
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                actions.append(InstallAction(name, path, "refused", "is a directory"))
                continue
        if ours:
            with open(path, "rb") as fh:
                same = fh.read() == data
            if same and (os.stat(path).st_mode & 0o7777) == LAUNCHER_MODE:
                actions.append(InstallAction(name, path, "unchanged"))
                continue
        try:
            write_atomic(path, data, LAUNCHER_MODE)
        except OSError as exc:
            raise LauncherError(f"cannot write launcher {path}: {exc.strerror or exc}") from None
        action = "installed" if not exists else ("updated" if ours else "replaced")
        how = "native launcher, " if program is not None else ""
        actions.append(
            InstallAction(name, path, action, f"{how}runs {PLUGIN_PACKAGE}.{package} with {interp}")
        )
    if compile_bytecode and any(a.action != "skipped" for a in actions):
        if step is not None:
            step("bytecode")
        actions.extend(compile_packages())
    return actions


def list_installed(bin_dir: str) -> list[LauncherStatus]:
    """The state of every known plugin name in ``bin_dir``."""
    out: list[LauncherStatus] = []
    for name in PLUGINS:
        path = os.path.join(bin_dir, name)
        if not os.path.lexists(path):
            out.append(LauncherStatus(name, path, "missing"))
            continue
        info = _launcher_info(path)
        if info is None:
            out.append(LauncherStatus(name, path, "foreign"))
            continue
        out.append(
            LauncherStatus(
                name,
                path,
                "ours",
                package=info.package,
                interpreter=info.interpreter,
                interpreter_ok=os.access(info.interpreter, os.X_OK),
                launcher=info.kind,
            )
        )
    return out


def remove(bin_dir: str, names: Iterable[str] | None = None) -> list[RemoveAction]:
    """Delete our launchers from ``bin_dir``; foreign files are never touched."""
    out: list[RemoveAction] = []
    for name in _select(names):
        path = os.path.join(bin_dir, name)
        if not os.path.lexists(path):
            out.append(RemoveAction(name, path, "missing"))
        elif not is_ours(path):
            out.append(RemoveAction(name, path, "kept-foreign"))
        else:
            try:
                os.unlink(path)
            except OSError as exc:
                raise LauncherError(f"cannot remove {path}: {exc.strerror or exc}") from None
            out.append(RemoveAction(name, path, "removed"))
    return out
