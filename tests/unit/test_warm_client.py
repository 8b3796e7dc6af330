"""The launchers' copy of the client side of the wire format (cnitool.warm.client),
kept in step with cnitool.warm.wire."""

from __future__ import annotations

import signal

import pytest

from cnitool.warm import client, front, service, wire


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


def test_launcher_client_encodes_exactly_as_the_service_reads() -> None:
    req = sample()
    data = client.encode_request(req.plugin, req.argv, req.env, req.tag, req.stdin, req.umask)
    assert data == wire.encode_request(req)


def test_front_encodes_a_cnitool_request_as_the_service_reads() -> None:
    req = wire.Request(
        op=wire.OP_CLI,
        plugin=wire.CLI_PROGRAM,
        argv=[b"cnitool", b"add", b"net", b"/run/netns/x"],
        env={b"NETCONFPATH": b"/etc/cni/net.d"},
        tag="0.1.0",
        umask=0o022,
    )
    data = client.encode_request(
        front.CLI_PROGRAM, req.argv, req.env, req.tag, b"", req.umask, op=front.OP_CLI
    )
    assert data == wire.encode_request(req)
    assert wire.FDS_OF_OP[wire.OP_CLI] == 6
    assert set(front.FORWARDED) == service.FORWARDED_SIGNALS
    # the front has no signal module for names: its numbers are this machine's
    assert (front.STOP, front.CONTINUE) == (service.STOP, service.CONTINUE)
    assert front.SIGSTOP == signal.SIGSTOP


def test_client_constants_match_the_wire_module() -> None:
    assert client.REQUEST_MAGIC == wire.REQUEST_MAGIC
    assert client.RESPONSE_MAGIC == wire.RESPONSE_MAGIC
    assert client.FORMAT_VERSION == wire.FORMAT_VERSION
    assert client.OP_RUN == wire.OP_RUN
    assert (client.KIND_RESULT, client.KIND_COLD) == (wire.KIND_RESULT, wire.KIND_COLD)
    assert wire.RESPONSE_HEADER.size == client.RESPONSE_HEADER_SIZE
    assert tuple(wire.LIMITS.values()) == client.LIMITS
    assert client.DEFAULT_SOCKET == service.DEFAULT_SOCKET


def test_client_reads_a_response_header() -> None:
    data = wire.encode_response(wire.KIND_RESULT, -3, b"out", b"errs")
    assert client.parse_response_head(data[:20]) == (wire.KIND_RESULT, -3, 3, 4)
    assert wire.decode_response(data) == wire.Response(wire.KIND_RESULT, -3, b"out", b"errs")
    with pytest.raises(ValueError):
        client.parse_response_head(b"HTTP/1.1 200 OK\r\n\r\n\0")


def test_client_refuses_to_send_an_oversized_request() -> None:
    big = b"x" * (wire.LIMITS["stdin"] + 1)
    assert client.encode_request("bridge", [], {}, "t", big, 0o022) is None
    many = {b"K%d" % i: b"v" * 1024 for i in range(1100)}
    assert client.encode_request("bridge", [], many, "t", b"", 0o022) is None


def test_error_json_is_what_a_plugin_prints() -> None:
    from cnitool.spec.errors import CNIError

    msg = 'broke: "quoted" \\ and\na newline\x01'
    assert client.error_json(999, msg) == CNIError(msg, code=999).to_json().encode()


def imports_of(path: str) -> set[str]:
    import ast

    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    return imported


def test_stdlib_only() -> None:
    """What the launchers embed imports nothing but os, sys and _socket (and io, only to
    replay stdin to the cold path, and site, which the cold path loads itself under the
    shebang's -S, before the plugins: both the launcher's fallback)."""
    from cnitool.warm import router

    cold = {"site", "cnitool_plugins._launch"}
    assert imports_of(client.__file__) == {"_socket", "os", "sys", "io", *cold}
    assert imports_of(router.__file__) == {"os", "sys", *cold}
    assert router.DEFAULT_SOCKET == client.DEFAULT_SOCKET


@pytest.mark.parametrize(
    ("status", "code", "said"),
    [
        (0, 0, b""),
        (3 << 8, 3, b""),
        (signal.SIGTERM, 128 + signal.SIGTERM, b""),  # a passed-on signal ended it
        (signal.SIGINT, 128 + signal.SIGINT, b""),
        (signal.SIGKILL, 1, b"was killed by SIGKILL"),
        (signal.SIGSEGV, 1, b"was killed by SIGSEGV"),
    ],
)
def test_a_commands_answer(status: int, code: int, said: bytes) -> None:
    answer = wire.decode_response(service.Service._cli_result(None, status, "", b"", b""))  # type: ignore[arg-type]
    assert (answer.kind, answer.status, answer.stdout) == (wire.KIND_RESULT, code, b"")
    assert said in answer.stderr and (said or answer.stderr == b"")
