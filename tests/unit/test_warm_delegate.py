"""Delegation inside a warm worker: our own launchers run in-process, with exec's contract."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from cnitool import launchers
from cnitool.invoke import delegate
from cnitool.spec.errors import CNIError


def conf(data_dir: Path) -> bytes:
    ipam = {"type": "host-local", "subnet": "10.66.0.0/24", "dataDir": str(data_dir)}
    return json.dumps({"cniVersion": "1.0.0", "name": "dnet", "ipam": ipam}).encode()


def env(bin_dir: Path) -> dict[str, str]:
    return {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "d1",
        "CNI_NETNS": "/run/netns/none",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(bin_dir),
    }


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bin"
    launchers.install(str(d), ["host-local"], compile_bytecode=False)
    return d


def no_exec(*args: Any, **kwargs: Any) -> bytes:
    raise AssertionError("exec'd a delegate that should have run in-process")


def test_in_process_delegate_gives_the_exec_result(
    bin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exec_result = delegate.delegate_add("host-local", conf(tmp_path / "a"), env(bin_dir))
    monkeypatch.setattr(delegate, "_IN_PROCESS", True)
    monkeypatch.setattr(delegate, "exec_plugin", no_exec)
    err = io.StringIO()
    result = delegate.delegate_add("host-local", conf(tmp_path / "b"), env(bin_dir), err)
    assert result == exec_result
    assert (tmp_path / "b" / "dnet" / "10.66.0.2").exists()
    delegate.delegate_del("host-local", conf(tmp_path / "b"), env(bin_dir), err)
    assert not (tmp_path / "b" / "dnet" / "10.66.0.2").exists()
    assert err.getvalue() == ""


def test_in_process_delegate_errors_are_the_exec_errors(
    bin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = b'{"cniVersion":"1.0.0","name":"dnet","ipam":{"type":"host-local"}}'
    with pytest.raises(CNIError) as cold:
        delegate.delegate_add("host-local", bad, env(bin_dir))
    monkeypatch.setattr(delegate, "_IN_PROCESS", True)
    monkeypatch.setattr(delegate, "exec_plugin", no_exec)
    with pytest.raises(CNIError) as warm:
        delegate.delegate_add("host-local", bad, env(bin_dir))
    assert (warm.value.code, warm.value.msg) == (cold.value.code, cold.value.msg)


def test_foreign_delegates_are_still_execd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "host-local"
    answer = {"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.3/24"}]}
    script.write_text(f"#!/bin/sh\necho '{json.dumps(answer)}'\n")
    script.chmod(0o755)
    monkeypatch.setattr(delegate, "_IN_PROCESS", True)
    result = delegate.delegate_add("host-local", conf(tmp_path), env(bin_dir))
    assert result == answer


def test_cold_path_never_runs_delegates_in_process() -> None:
    assert delegate._IN_PROCESS is False
