"""Install this project on a node from a container (a DaemonSet's install step), the way
kube-flannel's install-cni copies its plugin and conflist into the host: every path is
under ``host_root`` (the host's / mounted in the container).

What goes where (host paths):

- ``/opt/pycni/lib-<version>-<digest>/``: the ``cnitool`` and ``cnitool_plugins``
  packages (pure Python), and ``/opt/pycni/lib``, a symlink to it that is switched in one
  rename, so an upgrade never shows a half-copied tree;
- ``<bin dir>/<plugin>``: launchers run by the host's Python (``--python``, stdlib only on
  the warm path), which add ``/opt/pycni/lib`` to ``sys.path`` for the cold path; or,
  given a native launcher program (``native_launcher``, which the image builds), that
  program with each plugin's trailer: no interpreter starts on the warm path, and the
  cold path runs the host's Python on ``/opt/pycni/lib`` the same way;
- ``<conf dir>/<conflist>``: the network configuration, when one is given;
- ``/opt/pycni/install.json``: the manifest of what was written (path and sha256), and
  ``/opt/pycni/backup/``: files that were replaced with ``force``.

Each file is written to a temporary name in its directory and renamed into place.
Installing again with the same inputs changes nothing (every step reports
``unchanged``). :func:`uninstall` removes exactly what the manifest lists, and only while
it still holds what was written, puts back what ``force`` replaced, and leaves anything
else alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from . import __version__, launchers
from .files import write_atomic
from .spec.errors import CNIError

PYCNI_DIR = "/opt/pycni"
LIB_LINK = f"{PYCNI_DIR}/lib"
MANIFEST = f"{PYCNI_DIR}/install.json"
BACKUP_DIR = f"{PYCNI_DIR}/backup"
DEFAULT_PYTHON = "/usr/bin/python3"
PACKAGES = ("cnitool", launchers.PLUGIN_PACKAGE)


class NodeInstallError(CNIError):
    """The install or uninstall could not go on (nothing half-done is left behind)."""


@dataclass(frozen=True)
class Step:
    """What one install or uninstall step did to one host path."""

    path: str  # on the host (without the host root)
    action: str  # installed | updated | unchanged | replaced | refused | removed | restored | kept
    detail: str = ""


def _on_host(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


def _write_atomic(path: str, data: bytes, mode: int) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    write_atomic(path, data, mode)


def _package_files() -> list[tuple[str, str]]:
    """(path relative to the lib dir, source path) of every file of the packages."""
    out = []
    for package in PACKAGES:
        spec_dirs = [d for d in launchers.package_dirs() if os.path.basename(d) == package]
        for base in spec_dirs[:1]:
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for name in sorted(filenames):
                    if name.endswith((".pyc", ".pyo")):
                        continue
                    src = os.path.join(dirpath, name)
                    out.append((os.path.join(package, os.path.relpath(src, base)), src))
    if {rel.split(os.sep)[0] for rel, _ in out} != set(PACKAGES):
        raise NodeInstallError(f"cannot find the packages {', '.join(PACKAGES)} to copy")
    return out


def _install_lib(root: str) -> tuple[list[Step], str]:
    """Copy the packages to a new lib dir and switch the ``lib`` symlink to it."""
    files = _package_files()
    digest = hashlib.sha256()
    for rel, src in files:
        with open(src, "rb") as fh:
            digest.update(rel.encode() + b"\0" + hashlib.sha256(fh.read()).digest())
    name = f"lib-{__version__}-{digest.hexdigest()[:12]}"
    base = _on_host(root, PYCNI_DIR)
    target = os.path.join(base, name)
    steps = []
    if os.path.isdir(target):
        steps.append(Step(f"{PYCNI_DIR}/{name}", "unchanged"))
    else:
        os.makedirs(base, mode=0o755, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".lib-", dir=base)
        try:
            for rel, src in files:
                dst = os.path.join(tmp, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(src, dst)
            for dirpath, _dirs, filenames in os.walk(tmp):
                os.chmod(dirpath, 0o755)
                for fname in filenames:
                    os.chmod(os.path.join(dirpath, fname), 0o644)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        steps.append(Step(f"{PYCNI_DIR}/{name}", "installed", f"{len(files)} files"))
    link = _on_host(root, LIB_LINK)
    if os.path.islink(link) and os.readlink(link) == name:
        steps.append(Step(LIB_LINK, "unchanged", f"-> {name}"))
    else:
        tmp_link = os.path.join(base, f".lib-link-{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_link)
        os.symlink(name, tmp_link)
        os.replace(tmp_link, link)  # one rename: the old tree or the new, never neither
        steps.append(Step(LIB_LINK, "installed", f"-> {name}"))
    for old in sorted(os.listdir(base)):
        if old.startswith("lib-") and old != name:
            shutil.rmtree(os.path.join(base, old), ignore_errors=True)
            steps.append(Step(f"{PYCNI_DIR}/{old}", "removed", "an earlier version"))
    return steps, name


def _read_manifest(root: str) -> dict[str, object]:
    path = _on_host(root, MANIFEST)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise NodeInstallError(f"cannot read the install manifest {path}: {exc}") from None
    if not isinstance(data, dict):
        raise NodeInstallError(f"the install manifest {path} is not a JSON object")
    return data


def _place(
    root: str, path: str, data: bytes, mode: int, owned: dict[str, str], force: bool
) -> Step:
    """Write ``data`` at host ``path`` unless a file we did not write is there (then
    refused, or with ``force`` moved to the backup dir first)."""
    full = _on_host(root, path)
    want = hashlib.sha256(data).hexdigest()
    have = _sha256(full)
    if have == want:
        return Step(path, "unchanged")
    ours = path in owned and have == owned[path]
    if have is not None and not ours and not launchers.is_ours(full):
        if not force:
            return Step(path, "refused", "not written by this install; use --force to replace it")
        backup = _on_host(root, f"{BACKUP_DIR}{path}")
        os.makedirs(os.path.dirname(backup), mode=0o700, exist_ok=True)
        shutil.copy2(full, backup)
        _write_atomic(full, data, mode)
        return Step(path, "replaced", f"the old file is kept in {BACKUP_DIR}{path}")
    _write_atomic(full, data, mode)
    return Step(path, "installed" if have is None else "updated")


def install(
    root: str,
    *,
    bin_dir: str = "/opt/cni/bin",
    conf_dir: str = "/etc/cni/net.d",
    python: str = DEFAULT_PYTHON,
    plugins: Iterable[str] | None = None,
    conflist: str | None = None,
    force: bool = False,
    native_launcher: str | None = None,
) -> list[Step]:
    """Install into the host at ``root`` (see the module docstring); one step per path.
    ``native_launcher``: a native launcher program to write as each launcher instead
    of the Python script."""
    if not os.path.isdir(root):
        raise NodeInstallError(f"the host root {root} is not a directory")
    if not os.path.isabs(python) or not os.access(_on_host(root, python), os.X_OK):
        raise NodeInstallError(
            f"the host has no Python at {python} (looked at {_on_host(root, python)}); "
            "the launchers need one (3.11 or later) on the host"
        )
    program = None
    if native_launcher is not None:
        try:
            program = launchers.read_native_program(native_launcher)
        except launchers.LauncherError as exc:
            raise NodeInstallError(exc.msg, exc.details) from None
    conf_data = None
    if conflist is not None:
        try:
            with open(conflist, "rb") as fh:
                conf_data = fh.read()
            json.loads(conf_data)
        except (OSError, ValueError) as exc:
            raise NodeInstallError(f"cannot use the conflist {conflist}: {exc}") from None
    manifest = _read_manifest(root)
    owned = dict(manifest.get("files") or {})  # type: ignore[call-overload]
    steps, _lib = _install_lib(root)
    names = [n for n in (plugins or launchers.PLUGINS) if n in launchers.PLUGINS]
    unknown = sorted(set(plugins or ()) - set(launchers.PLUGINS))
    if unknown:
        raise NodeInstallError(f"unknown plugin name(s): {', '.join(unknown)}")
    files: dict[str, str] = {}
    for name in names:
        package = launchers.PLUGINS[name]
        if not launchers.package_available(package):
            continue
        answer = launchers.version_answer(package)
        if program is not None:
            data = program + launchers.native_trailer(name, python, answer, libdir=LIB_LINK)
        else:
            data = launchers.launcher_text(name, python, answer, libdir=LIB_LINK).encode()
        path = os.path.join(bin_dir, name)
        step = _place(root, path, data, launchers.LAUNCHER_MODE, owned, force)
        steps.append(step)
        if step.action != "refused":
            files[path] = hashlib.sha256(data).hexdigest()
    if conf_data is not None and conflist is not None:
        path = os.path.join(conf_dir, os.path.basename(conflist))
        step = _place(root, path, conf_data, 0o644, owned, force)
        steps.append(step)
        if step.action != "refused":
            files[path] = hashlib.sha256(conf_data).hexdigest()
    # what an earlier install wrote and this one no longer does stays listed (uninstall
    # still removes it) unless it is gone
    for path, digest in owned.items():
        if path not in files and _sha256(_on_host(root, path)) == digest:
            files[path] = digest
    record = {"version": __version__, "python": python, "files": dict(sorted(files.items()))}
    data = (json.dumps(record, indent=2) + "\n").encode()
    if _sha256(_on_host(root, MANIFEST)) != hashlib.sha256(data).hexdigest():
        _write_atomic(_on_host(root, MANIFEST), data, 0o644)
    return steps


def uninstall(root: str) -> list[Step]:
    """Remove what the manifest lists (while unchanged), put back the backups, remove the
    lib dirs and the manifest; a file changed since it was installed is kept."""
    manifest = _read_manifest(root)
    if not manifest:
        return [Step(MANIFEST, "kept", "nothing installed here (no manifest)")]
    steps = []
    files = manifest.get("files") or {}
    for path, digest in sorted(files.items()):  # type: ignore[attr-defined]
        full = _on_host(root, path)
        backup = _on_host(root, f"{BACKUP_DIR}{path}")
        have = _sha256(full)
        if have is not None and have != digest:
            steps.append(Step(path, "kept", "changed since it was installed"))
            continue
        if os.path.lexists(backup):
            os.replace(backup, full)
            steps.append(Step(path, "restored", "the file it replaced"))
        elif have is not None:
            os.unlink(full)
            steps.append(Step(path, "removed"))
    base = _on_host(root, PYCNI_DIR)
    link = _on_host(root, LIB_LINK)
    if os.path.islink(link):
        os.unlink(link)
        steps.append(Step(LIB_LINK, "removed"))
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if name.startswith("lib-"):
            shutil.rmtree(os.path.join(base, name))
            steps.append(Step(f"{PYCNI_DIR}/{name}", "removed"))
    os.unlink(_on_host(root, MANIFEST))
    steps.append(Step(MANIFEST, "removed"))
    backups = _on_host(root, BACKUP_DIR)
    for dirpath, _dirs, _files in os.walk(backups, topdown=False):  # children first
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)  # only empty ones: a backup that could not go back stays
    with contextlib.suppress(OSError):
        os.rmdir(base)
    return steps
