"""The plugin service's wire format and its bounds, the peer check, the listening socket
and the systemd units."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from cnitool.warm import service, units, wire


def sample() -> wire.Request:
    return wire.Request(
        op=wire.OP_RUN,
        plugin="host_local",
        argv=[b"/opt/cni/bin/host-local"],
        env={b"CNI_COMMAND": b"ADD", b"EMPTY": b"", b"EQ": b"a=b"},
        tag="0.1.0",
        stdin=b'{"cniVersion":"1.0.0"}\0binary',
        umask=0o027,
    )


def test_request_round_trip() -> None:
    data = wire.encode_request(sample())
    head = wire.decode_head(data[: wire.REQUEST_HEADER.size])
    assert head.op == wire.OP_RUN and head.umask == 0o027
    assert wire.decode_body(head, data[wire.REQUEST_HEADER.size :]) == sample()


@pytest.mark.parametrize(
    ("field", "size"), [(name, limit + 1) for name, limit in wire.LIMITS.items()]
)
def test_header_over_a_bound_is_refused(field: str, size: int) -> None:
    lengths = [size if name == field else 0 for name in wire.LIMITS]
    head = wire.REQUEST_HEADER.pack(wire.REQUEST_MAGIC, 1, wire.OP_RUN, 0, *lengths)
    with pytest.raises(wire.WireError, match=f"{field} too large"):
        wire.decode_head(head)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\0\0\0\0\0", "bad magic"),
        (wire.REQUEST_HEADER.pack(b"PCNQ", 9, 1, 0, 0, 0, 0, 0, 0), "format version"),
        (wire.REQUEST_HEADER.pack(b"PCNQ", 1, 7, 0, 0, 0, 0, 0, 0), "unknown request op"),
    ],
)
def test_garbage_header_is_refused(head: bytes, message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode_head(head[: wire.REQUEST_HEADER.size])


def test_malformed_bodies_are_refused() -> None:
    head = wire.RequestHead(wire.OP_RUN, 0, dict.fromkeys(wire.LIMITS, 0) | {"env": 4})
    with pytest.raises(wire.WireError, match="NUL-terminated"):
        wire.decode_body(head, b"A=bc")
    with pytest.raises(wire.WireError, match="KEY=VALUE"):
        wire.decode_body(head, b"ABC\0")
    with pytest.raises(wire.WireError, match="header says"):
        wire.decode_body(head, b"A=b\0extra")
    bad_plugin = wire.RequestHead(wire.OP_RUN, 0, dict.fromkeys(wire.LIMITS, 0) | {"plugin": 2})
    with pytest.raises(wire.WireError, match="ASCII"):
        wire.decode_body(bad_plugin, "é".encode())


def test_only_root_peers_are_allowed() -> None:
    assert service.peer_allowed(0)
    assert not service.peer_allowed(1000)
    assert not service.peer_allowed(65534)


def test_peer_uid_reads_so_peercred() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert service.peer_uid(a) == os.geteuid()


def test_latency_percentiles() -> None:
    stats = service.Stats()
    assert stats.percentile(0.5) is None
    stats.latencies.extend(i / 1000 for i in range(1, 101))
    assert stats.percentile(0.5) == 0.050
    assert stats.percentile(0.99) == 0.099
    stats.latencies.clear()
    stats.latencies.append(0.25)
    assert stats.percentile(0.99) == 0.25


def test_latency_window_is_bounded() -> None:
    stats = service.Stats()
    stats.latencies.extend([0.001] * (service.LATENCY_WINDOW * 3))
    assert len(stats.latencies) == service.LATENCY_WINDOW


@pytest.mark.skipif(os.geteuid() != 0, reason="the socket directory must belong to root")
def test_listener_is_root_only(tmp_path: Path) -> None:
    path = tmp_path / "run" / "plugins.sock"
    sock = service.open_listener(str(path))
    with sock:
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with pytest.raises(service.ServiceError, match="already listening"):
            service.open_listener(str(path))
    # a socket nobody listens on any more is stale: replaced
    service.open_listener(str(path)).close()


@pytest.mark.skipif(os.geteuid() != 0, reason="the socket directory must belong to root")
def test_listener_refuses_a_shared_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(service.ServiceError, match="writable by root only"):
        service.open_listener(str(shared / "plugins.sock"))
    (tmp_path / "file.sock").write_text("")
    with pytest.raises(service.ServiceError, match="not a socket"):
        service.open_listener(str(tmp_path / "file.sock"))


def test_systemd_listener_needs_our_pid() -> None:
    assert service.listener_from_systemd({"LISTEN_PID": "1", "LISTEN_FDS": "1"}) is None
    assert service.listener_from_systemd({}) is None


def test_units_name_the_cnitool_path(tmp_path: Path) -> None:
    actions = units.install_units(str(tmp_path), "/opt/pycni/bin/cnitool")
    assert [(a.name, a.action) for a in actions] == [
        ("pycni-plugins.service", "installed"),
        ("pycni-plugins.socket", "installed"),
    ]
    service_unit = (tmp_path / "pycni-plugins.service").read_text()
    assert "ExecStart=/opt/pycni/bin/cnitool serve --socket /run/pycni/plugins.sock" in service_unit
    assert units.PLACEHOLDER not in service_unit
    socket_unit = (tmp_path / "pycni-plugins.socket").read_text()
    assert "ListenStream=/run/pycni/plugins.sock" in socket_unit
    assert "SocketMode=0600" in socket_unit and "DirectoryMode=0700" in socket_unit
    again = units.install_units(str(tmp_path), "/opt/pycni/bin/cnitool")
    assert {a.action for a in again} == {"unchanged"}
    with pytest.raises(units.UnitError, match="absolute"):
        units.install_units(str(tmp_path), "cnitool")
