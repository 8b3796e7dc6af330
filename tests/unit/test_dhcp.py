"""dhcp without a kernel: the DHCP codec, the config, the daemon's flags, the wire protocol,
the result built from an ACK, and the plugin's errors when no daemon answers."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from cnitool_plugins.dhcp import config, daemon, packet, state, wire
from cnitool_plugins.dhcp.__main__ import PLUGIN
from cnitool_plugins.dhcp.client import Timing
from cnitool_plugins.dhcp.lease import Lease, LeaseError

from cnitool import skel
from cnitool.spec.errors import CNIError

MAC = bytes.fromhex("020000000001")


# -- packets ------------------------------------------------------------------------------
def test_encode_decode_round_trip_keeps_every_option_byte() -> None:
    cid = b"\0" + b"c1/net/eth0"
    odd = bytes(range(256)) + b"\0tail"  # 261 bytes: split in two options (RFC 3396)
    data = packet.encode(
        packet.DISCOVER,
        0x1234ABCD,
        MAC,
        [(packet.OPT_CLIENT_ID, cid), (224, odd), (packet.OPT_HOST_NAME, b"a\0b")],
        broadcast=True,
        secs=7,
    )
    assert len(data) >= 300 and data[0] == packet.BOOTREQUEST
    msg = packet.decode(data)
    assert msg.xid == 0x1234ABCD and msg.flags == packet.FLAG_BROADCAST
    assert msg.chaddr == MAC and msg.type == packet.DISCOVER
    assert msg.options[packet.OPT_CLIENT_ID] == cid
    assert msg.options[224] == odd  # joined again, byte for byte
    assert msg.options[packet.OPT_HOST_NAME] == b"a\0b"


def test_decode_refuses_what_is_not_dhcp() -> None:
    for junk in (b"", b"x" * 300, bytes(240)):
        with pytest.raises(ValueError):
            packet.decode(junk)
    good = bytearray(packet.encode(packet.OFFER, 1, MAC, []))
    good[240:] = bytes((packet.OPT_ROUTER, 9, 1, 2))  # an option longer than the packet
    with pytest.raises(ValueError, match="truncated"):
        packet.decode(bytes(good))


def test_framing_round_trip_and_checksums() -> None:
    payload = packet.encode(packet.REQUEST, 9, MAC, [])
    frame = packet.frame(payload, MAC, packet.BROADCAST_MAC, "0.0.0.0", "255.255.255.255")
    assert frame[:6] == packet.BROADCAST_MAC and frame[6:12] == MAC
    ip_header = frame[14:34]
    assert packet.checksum(ip_header) == 0  # a valid header sums to zero
    # a frame to the client port comes back out; one to the server port does not
    reply = bytearray(frame)
    reply[34:38] = (67).to_bytes(2, "big") + (68).to_bytes(2, "big")
    assert packet.unframe(bytes(reply)) == (MAC, payload)
    assert packet.unframe(frame) is None
    assert packet.unframe(frame[:30]) is None


def test_routes_and_masks() -> None:
    # 10.99.0.0/16 via 10.77.0.1, 0.0.0.0/0 via 10.77.0.254, 192.168.1.0/24 on-link
    data = bytes([16, 10, 99, 10, 77, 0, 1, 0, 10, 77, 0, 254, 24, 192, 168, 1, 0, 0, 0, 0])
    assert packet.classless_routes(data) == [
        ("10.99.0.0/16", "10.77.0.1"),
        ("0.0.0.0/0", "10.77.0.254"),
        ("192.168.1.0/24", "0.0.0.0"),
    ]
    with pytest.raises(ValueError):
        packet.classless_routes(bytes([33, 1, 2, 3, 4, 5, 6, 7, 8, 9]))
    with pytest.raises(ValueError):
        packet.classless_routes(bytes([24, 10, 1]))
    static = bytes([10, 1, 2, 3, 10, 77, 0, 1, 172, 16, 5, 0, 10, 77, 0, 2])
    assert packet.static_routes(static) == [
        ("10.0.0.0/8", "10.77.0.1"),
        ("172.16.0.0/16", "10.77.0.2"),
    ]
    assert packet.prefix_length(bytes([255, 255, 254, 0])) == 23
    with pytest.raises(ValueError):
        packet.prefix_length(bytes([255, 0, 255, 0]))


# -- config ---------------------------------------------------------------------------------
def _conf(**ipam: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "net", "ipam": {"type": "dhcp", **ipam}}


def test_config_defaults_and_options() -> None:
    plain = config.load(_conf(), "")
    assert plain.socket_path == "/run/cni/dhcp.sock"
    assert plain.request == (3, 1) and plain.provide == () and plain.priority == 0
    conf = config.load(
        _conf(
            daemonSocketPath="/tmp/d.sock",
            request=[{"option": "121"}, {"option": "routers"}],
            provide=[
                {"option": "host-name", "value": "fixed", "fromArg": "K8S_POD_NAME"},
                {"option": "user-class", "value": "u"},
                {"option": "224", "fromArg": "MISSING"},
            ],
            priority=7,
        ),
        "IgnoreUnknown=1;K8S_POD_NAME=web=0;junk",
    )
    assert conf.socket_path == "/tmp/d.sock" and conf.priority == 7
    assert conf.request == (121, 3, 1)  # given ones first, defaults after, once each
    # fromArg wins over value; split on the first "="; an absent arg provides nothing
    assert conf.provide == ((12, b"web=0"), (77, b"u"))
    skipped = config.load(_conf(request=[{"skipDefault": True, "option": "subnet-mask"}]), "")
    assert skipped.request == (1,)


@pytest.mark.parametrize(
    ("ipam", "message"),
    [
        ({"request": [{"option": "bogus"}]}, 'Can not parse option "bogus"'),
        ({"request": [{"option": "0"}]}, 'Can not parse option "0"'),
        ({"provide": [{"option": "256", "value": "x"}]}, 'Can not parse option "256"'),
        ({"provide": [{"option": "host-name", "value": "x" * 256}]}, "value too long"),
        ({"provide": "host-name"}, '"ipam.provide" must be a list'),
        ({"request": [5]}, r'"ipam.request\[0\]" must be an object'),
        ({"priority": "high"}, '"ipam.priority" must be an integer'),
        ({"daemonSocketPath": 5}, '"ipam.daemonSocketPath" must be a string'),
    ],
)
def test_config_errors(ipam: dict[str, Any], message: str) -> None:
    with pytest.raises(CNIError, match=message):
        config.load(_conf(**ipam), "")


def test_config_without_ipam_is_refused() -> None:
    with pytest.raises(CNIError, match='"ipam" must be an object') as exc:
        config.load({"name": "net"}, "")
    assert exc.value.code == 7


def test_client_id_is_the_reference_one_cut_to_254_bytes() -> None:
    assert config.client_id("c1", "net", "eth0") == "c1/net/eth0"
    long = config.client_id("x" * 300, "net", "eth0")
    assert len(long.encode()) == 254 and long == "x" * 254


# -- the daemon's flags -----------------------------------------------------------------------
def test_flags_as_go_parses_them() -> None:
    opts = daemon.parse_flags(
        ["-socketpath", "/s", "--pidfile=/p", "-broadcast", "-timeout", "1m30s", "-resendmax=500ms"]
    )
    assert (opts.socketpath, opts.pidfile, opts.broadcast) == ("/s", "/p", True)
    assert opts.timeout == 90.0 and opts.resendmax == 0.5 and opts.resendtimeout == 208.0
    assert daemon.parse_flags(["-broadcast=false"]).broadcast is False
    # parsing stops at the first non-flag
    assert daemon.parse_flags(["extra", "-broadcast"]).broadcast is False
    for argv, message in (
        (["-bogus"], "flag provided but not defined: -bogus"),
        (["-timeout"], "flag needs an argument: -timeout"),
        (["-timeout", "10"], 'invalid value "10" for flag -timeout'),
        (["-broadcast=yes"], 'invalid boolean value "yes"'),
    ):
        with pytest.raises(daemon.FlagError, match=message):
            daemon.parse_flags(argv)


def test_durations() -> None:
    assert daemon.parse_duration("0") == 0
    assert daemon.parse_duration("1h2m3.5s") == 3723.5
    assert daemon.parse_duration("-2s") == -2
    assert daemon.parse_duration("250us") == pytest.approx(0.00025)
    for bad in ("", "s", "10", "1d", "1s2"):
        with pytest.raises(ValueError):
            daemon.parse_duration(bad)


def test_help_and_bad_flags_exit_like_go(capsys: pytest.CaptureFixture[str]) -> None:
    assert daemon.main(["-h"]) == 0
    assert "Usage of daemon:" in capsys.readouterr().err
    assert daemon.main(["-nope"]) == 2
    assert "flag provided but not defined: -nope" in capsys.readouterr().err


# -- wire -------------------------------------------------------------------------------------
def test_wire_round_trip_and_refusals() -> None:
    stdin = b'{"name":"n","x":"\xc3\xa9"}'
    msg = wire.request(
        "ADD", {"containerID": "c", "netns": "/n", "ifName": "e", "args": "", "path": ""}, stdin
    )
    length = wire.parse_header(msg[: wire.HEADER_SIZE], wire.MAX_REQUEST)
    method, args, data = wire.parse_request(wire.decode_payload(msg[wire.HEADER_SIZE :]))
    assert length == len(msg) - wire.HEADER_SIZE
    assert (method, args["containerID"], args["netns"], data) == ("ADD", "c", "/n", stdin)
    with pytest.raises(wire.WireError, match="not a pycni dhcp message"):
        wire.parse_header(b"GET / HTTP", wire.MAX_REQUEST)
    with pytest.raises(wire.WireError, match="version 9"):
        wire.parse_header(b"PDHC\x00\x09\x00\x00\x00\x00", wire.MAX_REQUEST)
    with pytest.raises(wire.WireError, match="exceeds the limit"):
        wire.parse_header(wire.header(wire.MAX_REQUEST + 1), wire.MAX_REQUEST)
    with pytest.raises(wire.WireError, match="unknown method"):
        wire.parse_request({"method": "GC", "args": {}})
    with pytest.raises(wire.WireError, match="not base64"):
        wire.parse_request({"method": "DEL", "args": {"stdinData": "é"}})


# -- the result of a lease ----------------------------------------------------------------------
def _lease_with(options: list[tuple[int, bytes]], priority: int = 0) -> Lease:
    conf = config.load(_conf(priority=priority), "")
    lease = Lease("c/net/eth0", "/n", "eth0", conf, Timing(1, 1, 1, False))
    data = bytearray(packet.encode(packet.ACK, 1, MAC, options))
    data[16:20] = bytes([10, 77, 0, 9])  # yiaddr
    lease.ack = packet.decode(bytes(data))
    return lease


MASK = (packet.OPT_SUBNET_MASK, bytes([255, 255, 255, 0]))
ROUTER = (packet.OPT_ROUTER, bytes([10, 77, 0, 1, 10, 77, 0, 2]))


def test_result_router_and_static_routes() -> None:
    static = (packet.OPT_STATIC_ROUTES, bytes([10, 1, 0, 0, 10, 77, 0, 3]))
    result = _lease_with([MASK, ROUTER, static]).result()
    assert result == {
        "cniVersion": "1.1.0",
        "ips": [{"address": "10.77.0.9/24", "gateway": "10.77.0.1"}],
        "routes": [
            {"dst": "10.0.0.0/8", "gw": "10.77.0.3"},
            {"dst": "0.0.0.0/0", "gw": "10.77.0.1"},
        ],
    }


def test_result_classless_routes_win_and_priority_applies() -> None:
    classless = (packet.OPT_CLASSLESS_ROUTES, bytes([16, 10, 99, 10, 77, 0, 1, 8, 10, 0, 0, 0, 0]))
    static = (packet.OPT_STATIC_ROUTES, bytes([10, 1, 0, 0, 10, 77, 0, 3]))
    result = _lease_with([MASK, ROUTER, static, classless], priority=30).result()
    assert result["routes"] == [
        {"dst": "10.99.0.0/16", "gw": "10.77.0.1", "priority": 30},
        {"dst": "10.0.0.0/8", "scope": 253, "priority": 30},  # on-link
    ]


def test_result_without_mask_or_router() -> None:
    with pytest.raises(LeaseError, match="Subnet Mask not found"):
        _lease_with([ROUTER]).result()
    bare = _lease_with([MASK]).result()
    assert bare["ips"] == [{"address": "10.77.0.9/24"}] and bare["routes"] == []


# -- the plugin with no daemon, and with a fake one ---------------------------------------------
def _call(command: str, conf: dict[str, Any], netns: str = "/run/netns/x") -> tuple[Any, int]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }
    out, code = skel.run(PLUGIN, env, json.dumps(conf).encode())
    return (json.loads(out) if out else None), code


def test_no_daemon_add_fails_clearly_and_del_succeeds(tmp_path: Path) -> None:
    sock = str(tmp_path / "none.sock")
    conf = _conf(daemonSocketPath=sock)
    out, code = _call("ADD", conf)
    assert code == 1 and out["code"] == 999
    assert out["msg"] == (
        f"error dialing DHCP daemon at {sock}: No such file or directory "
        '(is "dhcp daemon" running?)'
    )
    out, code = _call("DEL", conf)
    assert (out, code) == (None, 0)
    out, code = _call("ADD", {"cniVersion": "1.0.0", "name": "n"})
    assert code == 1 and out["code"] == 7


def _fake_daemon(path: str, answer: bytes) -> tuple[threading.Thread, list[bytes]]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            head = conn.recv(wire.HEADER_SIZE, socket.MSG_WAITALL)
            length = wire.parse_header(head, wire.MAX_REQUEST)
            got.append(conn.recv(length, socket.MSG_WAITALL))
            conn.sendall(answer)
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, got


def test_plugin_sends_the_call_and_prints_the_daemon_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = str(tmp_path / "d.sock")
    result = {"cniVersion": "1.1.0", "ips": [{"address": "10.77.0.9/24"}], "routes": []}
    thread, got = _fake_daemon(sock, wire.encode({"result": result}))
    monkeypatch.chdir(tmp_path)
    out, code = _call("ADD", {**_conf(daemonSocketPath=sock), "cniVersion": "0.4.0"}, "rel/ns")
    thread.join(10)
    assert code == 0 and out == {
        "cniVersion": "0.4.0",
        "ips": [{"version": "4", "address": "10.77.0.9/24"}],
    }
    method, args, stdin = wire.parse_request(wire.decode_payload(got[0]))
    assert method == "ADD" and args["netns"] == os.path.join(str(tmp_path), "rel/ns")
    assert json.loads(stdin)["ipam"]["daemonSocketPath"] == sock


def test_plugin_relays_the_daemon_error_code(tmp_path: Path) -> None:
    sock = str(tmp_path / "d.sock")
    error = {"error": {"code": 11, "msg": "busy", "details": "later"}}
    thread, _ = _fake_daemon(sock, wire.encode(error))
    out, code = _call("CHECK", _conf(daemonSocketPath=sock))
    thread.join(10)
    assert code == 1 and out == {"code": 11, "msg": "busy", "details": "later"}


def test_plugin_reports_a_daemon_that_hangs_up(tmp_path: Path) -> None:
    sock = str(tmp_path / "d.sock")
    thread, _ = _fake_daemon(sock, b"PDHC\x00\x01\x00\x00\x00\x10{")
    out, code = _call("ADD", _conf(daemonSocketPath=sock))
    thread.join(10)
    assert code == 1 and "closed the connection before it answered" in out["msg"]


def test_shipped_systemd_units_match_the_daemon_defaults() -> None:
    units = Path(daemon.__file__).parent / "systemd"
    service = (units / "pycni-dhcp.service").read_text()
    sock = (units / "pycni-dhcp.socket").read_text()
    assert "\nExecStart=/opt/cni/bin/dhcp daemon\n" in service
    assert "Requires=pycni-dhcp.socket" in service
    assert f"\nListenStream={config.DEFAULT_SOCKET}\n" in sock
    assert "\nSocketMode=0600\n" in sock


# -- leases on disk ------------------------------------------------------------------------------
def test_lease_record_round_trip(tmp_path: Path) -> None:
    conf = config.load(
        _conf(priority=5, provide=[{"option": "224", "value": "x"}], request=[{"option": "121"}]),
        "",
    )
    lease = _lease_with([MASK, ROUTER, (packet.OPT_LEASE_TIME, (600).to_bytes(4, "big"))])
    lease.conf = conf
    store = state.Store(str(tmp_path / "leases"))
    lease.store = store
    lease._commit(lease.ack, bytes.fromhex("0a0000000001"))  # type: ignore[arg-type]
    (record,) = store.load()
    again = Lease.from_record(record, Timing(1, 1, 1, False))
    assert again.client_id == lease.client_id
    assert again.conf == conf._replace(socket_path="")  # the daemon does not need it
    assert again.ack is not None and again.ack.yiaddr == "10.77.0.9"
    assert again.server_mac == bytes.fromhex("0a0000000001")
    assert abs(again.expire_at - lease.expire_at) < 1 and again.result() == lease.result()
    lease.forget()
    assert store.load() == []


def test_store_drops_unreadable_files(tmp_path: Path) -> None:
    store = state.Store(str(tmp_path))
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "big.json").write_text("[" + " " * state.MAX_FILE + "]")
    (tmp_path / "other.txt").write_text("kept")
    store.save("c/n/eth0", {"clientID": "c/n/eth0"})
    assert store.load() == [{"clientID": "c/n/eth0"}]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".json")) == [
        "other.txt"
    ]
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_daemon_restore_skips_broken_and_expired_records(tmp_path: Path) -> None:
    store = state.Store(str(tmp_path))
    store.save("broken", {"clientID": "broken", "netns": "/n"})
    lease = _lease_with([MASK, ROUTER, (packet.OPT_LEASE_TIME, (600).to_bytes(4, "big"))])
    lease.store = store
    lease._commit(lease.ack, MAC)  # type: ignore[arg-type]
    record = lease.to_record()
    record["expireAt"] = 1.0  # long gone
    store.save(lease.client_id, record)
    service = daemon.Service("", Timing(1, 1, 1, False), store)
    service.restore()
    assert service.leases == {} and store.load() == []
