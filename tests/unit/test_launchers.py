"""cnitool.launchers: install, list and remove plugin launchers in a bin dir."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import cnitool
from cnitool import launchers


def by_name(actions: list[launchers.InstallAction]) -> dict[str, str]:
    return {a.name: a.action for a in actions if a.kind == "launcher"}


def test_install_writes_noop_launcher(tmp_path: Path) -> None:
    actions = launchers.install(str(tmp_path), ["noop"], kind="python")
    assert by_name(actions) == {"noop": "installed"}
    path = tmp_path / "noop"
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    lines = path.read_text().splitlines()
    assert lines[0] == f"#!{launchers.interpreter_path(sys.executable)} -IS"
    assert lines[1].startswith(launchers.MARKER)
    assert 'PACKAGE = "noop"' in lines
    assert f'TAG = "{cnitool.__version__}"' in lines
    assert "ANSWER = None" in lines  # noop's versions depend on the call: no VERSION constant
    assert lines[-1] == "route(PACKAGE, ANSWER, TAG, CLIENT)"
    assert launchers.is_ours(str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["noop"]  # no temp file left behind
    # the packages under test are the checkout's: never byte-compiled into the tree
    assert {a.action for a in actions if a.kind == "bytecode"} == {"skipped"}


def test_only_installed_copies_are_byte_compiled(tmp_path: Path) -> None:
    import sysconfig

    assert launchers.is_installed_copy(sysconfig.get_path("purelib") + "/somepkg")
    assert not launchers.is_installed_copy(str(tmp_path))
    assert not any(launchers.is_installed_copy(d) for d in launchers.package_dirs())


def test_installed_noop_answers_version(tmp_path: Path) -> None:
    launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    proc = subprocess.run(
        [str(tmp_path / "noop")],
        input=b'{"cniVersion":"1.0.0"}',
        env={"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        b'{"cniVersion":"1.1.0","supportedVersions":'
        b'["0.-42.0","0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n'
    )


def test_installed_noop_reports_errors_as_json(tmp_path: Path) -> None:
    launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    proc = subprocess.run(
        [str(tmp_path / "noop")],
        input=b"",
        env={"CNI_COMMAND": "ADD", "CNI_NETNS": "/n", "CNI_IFNAME": "eth0"},
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == {
        "code": 4,
        "msg": "required env variables [CNI_CONTAINERID,CNI_PATH] missing",
    }
    assert proc.stderr == b""


def test_reinstall_is_idempotent(tmp_path: Path) -> None:
    launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    before = (tmp_path / "noop").stat().st_ino
    again = launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    assert by_name(again) == {"noop": "unchanged"}
    assert (tmp_path / "noop").stat().st_ino == before


def test_reinstall_updates_changed_launcher(tmp_path: Path) -> None:
    launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    path = tmp_path / "noop"
    path.write_text(path.read_text().replace(" -IS\n", " -IS -B\n", 1))
    actions = launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    assert by_name(actions) == {"noop": "updated"}
    assert path.read_text().splitlines()[0].endswith(" -IS")


def test_refuses_foreign_file_unless_forced(tmp_path: Path) -> None:
    foreign = tmp_path / "noop"
    foreign.write_bytes(b"\x7fELF not ours")
    actions = launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    assert by_name(actions) == {"noop": "refused"}
    assert foreign.read_bytes() == b"\x7fELF not ours"
    actions = launchers.install(
        str(tmp_path), ["noop"], force=True, compile_bytecode=False, kind="python"
    )
    assert by_name(actions) == {"noop": "replaced"}
    assert launchers.is_ours(str(foreign))


def test_symlink_is_foreign(tmp_path: Path) -> None:
    target = tmp_path / "real"
    launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    (tmp_path / "noop").rename(target)
    (tmp_path / "noop").symlink_to(target)
    assert by_name(
        launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    ) == {"noop": "refused"}
    assert launchers.remove(str(tmp_path), ["noop"])[0].action == "kept-foreign"
    assert (tmp_path / "noop").is_symlink()


def test_install_all_skips_missing_packages(tmp_path: Path) -> None:
    actions = by_name(
        launchers.install(str(tmp_path / "bin"), compile_bytecode=False, kind="python")
    )
    assert set(actions) == set(launchers.PLUGINS)
    assert actions["noop"] == "installed"
    for name, action in actions.items():
        package = launchers.PLUGINS[name]
        expected = "installed" if launchers.package_available(package) else "skipped"
        assert action == expected, name
        assert (tmp_path / "bin" / name).exists() == (expected == "installed")


def test_unknown_name_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(launchers.LauncherError, match="unknown plugin name") as exc:
        launchers.install(str(tmp_path), ["bridge", "nosuch"])
    assert exc.value.code == 4  # bad input, not an internal error
    assert list(tmp_path.iterdir()) == []


def test_host_local_executable_name_maps_to_package() -> None:
    assert launchers.PLUGINS["host-local"] == "host_local"
    assert 'PACKAGE = "host_local"' in launchers.launcher_text("host-local", "/usr/bin/python3")


def test_list_installed(tmp_path: Path) -> None:
    launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    (tmp_path / "bridge").write_text("#!/bin/sh\nexit 0\n")
    states = {s.name: s for s in launchers.list_installed(str(tmp_path))}
    assert set(states) == set(launchers.PLUGINS)
    assert states["noop"].state == "ours"
    assert states["noop"].package == "noop"
    assert states["noop"].interpreter == launchers.interpreter_path(sys.executable)
    assert states["noop"].interpreter_ok
    assert states["bridge"].state == "foreign"
    assert states["ptp"].state == "missing"


def test_list_reports_stale_interpreter(tmp_path: Path) -> None:
    (tmp_path / "noop").write_text(
        launchers.launcher_text("noop", str(tmp_path / "gone" / "python"))
    )
    state = {s.name: s for s in launchers.list_installed(str(tmp_path))}["noop"]
    assert state.state == "ours"
    assert not state.interpreter_ok


def test_remove_only_ours(tmp_path: Path) -> None:
    launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    (tmp_path / "bridge").write_text("#!/bin/sh\n")
    result = {r.name: r.action for r in launchers.remove(str(tmp_path))}
    assert result["noop"] == "removed"
    assert result["bridge"] == "kept-foreign"
    assert result["ptp"] == "missing"
    assert not (tmp_path / "noop").exists()
    assert (tmp_path / "bridge").read_text() == "#!/bin/sh\n"


def test_venv_interpreter_path_is_kept(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    link = venv / "bin" / "python"
    link.symlink_to(os.path.realpath(sys.executable))
    assert launchers.interpreter_path(str(link)) == str(link)


def test_plain_symlink_interpreter_is_resolved(tmp_path: Path) -> None:
    link = tmp_path / "python"
    link.symlink_to(os.path.realpath(sys.executable))
    assert launchers.interpreter_path(str(link)) == os.path.realpath(sys.executable)


def test_script_interpreter_is_refused(tmp_path: Path) -> None:
    shim = tmp_path / "python"
    shim.write_text('#!/usr/bin/env bash\nexec pyenv exec python "$@"\n')
    shim.chmod(0o755)
    with pytest.raises(launchers.LauncherError, match="shim"):
        launchers.interpreter_path(str(shim))


def test_interpreter_path_with_space_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "my python"
    link.symlink_to(os.path.realpath(sys.executable))
    (tmp_path / "pyvenv.cfg").write_text("")  # keep the path unresolved
    with pytest.raises(launchers.LauncherError, match="whitespace"):
        launchers.interpreter_path(str(link))


def test_launcher_for_unimportable_package_prints_cni_error(tmp_path: Path) -> None:
    launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    path = tmp_path / "noop"
    path.write_text(path.read_text().replace('PACKAGE = "noop"', 'PACKAGE = "no_such_plugin"'))
    proc = subprocess.run(
        [str(path)], env={"CNI_COMMAND": "VERSION"}, capture_output=True, check=False
    )
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["code"] == 999
    assert "cnitool_plugins.no_such_plugin.__main__" in err["msg"]
    assert b"Traceback" not in proc.stderr


def test_launcher_from_before_the_warm_path_is_still_ours(tmp_path: Path) -> None:
    path = tmp_path / "noop"
    path.write_text(
        f"#!{sys.executable} -I\n{launchers.MARKER}: noop (managed by cnitool)\n"
        'from cnitool_plugins._launch import run\nrun("noop")\n'
    )
    state = {s.name: s for s in launchers.list_installed(str(tmp_path))}["noop"]
    assert (state.state, state.package) == ("ours", "noop")
    assert launchers.launcher_package(str(path)) is None  # no TAG: never run in-process
    assert by_name(
        launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    ) == {"noop": "updated"}


def test_version_answer_is_what_the_plugin_prints(tmp_path: Path) -> None:
    from cnitool_plugins.host_local.__main__ import PLUGIN

    from cnitool import skel

    answer = launchers.version_answer("host_local")
    assert answer == skel.run(PLUGIN, {"CNI_COMMAND": "VERSION"}, b"")[0]
    launchers.install(str(tmp_path), ["host-local"], compile_bytecode=False, kind="python")
    proc = subprocess.run(
        [str(tmp_path / "host-local")],
        env={"CNI_COMMAND": "VERSION"},
        capture_output=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, answer, b"")
    assert launchers.launcher_package(str(tmp_path / "host-local")) == "host_local"


def test_launcher_carries_the_client_source_exactly() -> None:
    import ast

    from cnitool.warm import client, router

    text = launchers.launcher_text("bridge", "/usr/bin/python3", b"answer\n")
    tree = ast.parse(text)
    consts = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("PACKAGE", "ANSWER", "CLIENT")
    }
    with open(client.__file__, encoding="utf-8") as fh:
        assert consts["CLIENT"] == fh.read()
    assert (consts["PACKAGE"], consts["ANSWER"]) == ("bridge", b"answer\n")
    with open(router.__file__, encoding="utf-8") as fh:
        assert fh.read() in text


def _interpreter_requested(program: bytes) -> bool:
    """Whether a 64-bit little-endian ELF program has a PT_INTERP header, naming a dynamic
    loader (it is not statically linked)."""
    assert program[:4] == launchers.ELF_MAGIC and program[4] == 2 and program[5] == 1
    phoff = int.from_bytes(program[0x20:0x28], "little")
    size = int.from_bytes(program[0x36:0x38], "little")
    count = int.from_bytes(program[0x38:0x3A], "little")
    types = (int.from_bytes(program[phoff + i * size :][:4], "little") for i in range(count))
    return 3 in types  # PT_INTERP


@pytest.mark.skipif(launchers.find_compiler() is None, reason="no C compiler")
def test_native_launchers_are_static_when_the_c_library_allows(tmp_path: Path) -> None:
    cc = launchers.find_compiler()
    assert cc is not None
    libc_dirs = (
        ("/usr/lib/musl/lib", "/usr/lib/x86_64-linux-musl")
        if "musl" in os.path.basename(cc)
        else ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")
    )
    static_libc = any(Path(d, "libc.a").exists() for d in libc_dirs)
    program = launchers.build_native(cc)
    assert _interpreter_requested(program) != static_libc
    # a compiler that cannot link statically: the dynamic build, not an error
    wrapper = tmp_path / "cc-without-static"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = -static ] && { echo "no static libc" >&2; exit 1; }; done\n'
        f'exec {cc} "$@"\n'
    )
    wrapper.chmod(0o755)
    dynamic = launchers.build_native(str(wrapper))
    assert _interpreter_requested(dynamic)
    assert dynamic.startswith(launchers.ELF_MAGIC)


def _fake_tool(directory: Path, name: str) -> str:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(0o755)
    return str(path)


def test_find_compiler_prefers_cc_env_then_musl_then_cc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert launchers.find_compiler() is None
    gcc = _fake_tool(tmp_path, "gcc")
    assert launchers.find_compiler() == gcc
    cc = _fake_tool(tmp_path, "cc")
    assert launchers.find_compiler() == cc
    musl = _fake_tool(tmp_path, "musl-gcc")
    assert launchers.find_compiler() == musl  # musl's programs start without CPUID probing
    monkeypatch.setenv("CC", "gcc")
    assert launchers.find_compiler() == gcc  # the operator's choice wins


@pytest.mark.skipif(shutil.which("musl-gcc") is None, reason="no musl-gcc (Debian: musl-tools)")
def test_native_launcher_built_with_musl_is_static_and_answers_version(tmp_path: Path) -> None:
    program = launchers.build_native(str(shutil.which("musl-gcc")))
    assert program.startswith(launchers.ELF_MAGIC)
    assert not _interpreter_requested(program)
    assert b"GLIBC" not in program
    answer = b'{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'
    path = tmp_path / "noop"
    path.write_bytes(program + launchers.native_trailer("noop", sys.executable, answer, "t"))
    path.chmod(0o755)
    proc = subprocess.run(
        [str(path)], env={"CNI_COMMAND": "VERSION"}, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(answer)


def test_a_compiler_that_fails_gives_way_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shutil.which("gcc") or shutil.which("cc")
    if real is None:
        pytest.skip("no C compiler")
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")  # first: the two below
    _fake_tool(tmp_path, "musl-gcc")  # installed but broken: exits 1
    (tmp_path / "gcc").symlink_to(real)
    assert launchers.find_compilers()[0] == str(tmp_path / "musl-gcc")
    program = launchers._native_program("auto")
    assert program is not None and program.startswith(launchers.ELF_MAGIC)
    with pytest.raises(launchers.LauncherError, match="musl-gcc"):
        launchers.build_native(str(tmp_path / "musl-gcc"))
