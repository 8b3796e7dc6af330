"""A small client of the CRI (the kubelet's gRPC API to its container runtime), enough to
run, stop and remove a pod sandbox, and an OCI image layout builder for the sandbox's pause
image. The few protobuf messages are encoded by hand: field numbers and types are those of
``runtime.v1`` (k8s.io/cri-api), so no generated code is needed.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

SERVICE = "/runtime.v1.RuntimeService/"
TCP = 0


# -- protobuf wire format ----------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def string(field: int, value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _key(field, 2) + _varint(len(data)) + data if data else b""


def integer(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value) if value else b""


def message(field: int, body: bytes) -> bytes:
    return _key(field, 2) + _varint(len(body)) + body


def fields(data: bytes) -> dict[int, list[Any]]:
    """Decode one message level: field number -> values (ints, or bytes of strings and
    nested messages)."""
    out: dict[int, list[Any]] = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 2:
            size, i = _read_varint(data, i)
            value, i = data[i : i + size], i + size
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        else:
            raise ValueError(f"wire type {wire}")
        out.setdefault(field, []).append(value)
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


# -- runtime.v1 messages ------------------------------------------------------------------
def sandbox_config(name: str, uid: str, namespace: str, ports: list[tuple[int, int]]) -> bytes:
    """PodSandboxConfig: metadata (1), hostname (2), port_mappings (5) of (container, host)
    TCP ports, linux (8) left empty."""
    metadata = string(1, name) + string(2, uid) + string(3, namespace) + integer(4, 0)
    body = message(1, metadata) + string(2, name)
    for container_port, host_port in ports:
        mapping = integer(1, TCP) + integer(2, container_port) + integer(3, host_port)
        body += message(5, mapping)
    return body + message(8, b"")


def run_pod_sandbox(channel: Any, config: bytes, timeout: float = 60) -> str:
    reply = _call(channel, "RunPodSandbox", message(1, config), timeout)
    return str(fields(reply)[1][0].decode())


def stop_pod_sandbox(channel: Any, sandbox_id: str, timeout: float = 60) -> None:
    _call(channel, "StopPodSandbox", string(1, sandbox_id), timeout)


def remove_pod_sandbox(channel: Any, sandbox_id: str, timeout: float = 60) -> None:
    _call(channel, "RemovePodSandbox", string(1, sandbox_id), timeout)


def version(channel: Any, timeout: float = 10) -> dict[int, list[Any]]:
    return fields(_call(channel, "Version", string(1, "v1"), timeout))


def _call(channel: Any, method: str, request: bytes, timeout: float) -> bytes:
    stub = channel.unary_unary(
        SERVICE + method,
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    reply: bytes = stub(request, timeout=timeout)
    return reply


# -- an OCI image layout for the pause container ------------------------------------------
def _blob(root: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def pause_image(busybox: Path, name: str, out: Path) -> Path:
    """An OCI image archive ``name`` whose one layer holds a static busybox, started as
    ``busybox sleep``: a pause container made from what the node has (no registry)."""
    root = out.parent / (out.name + ".layout")
    (root / "blobs" / "sha256").mkdir(parents=True)
    layer_io = io.BytesIO()
    with tarfile.open(fileobj=layer_io, mode="w") as layer:
        layer.add(str(busybox), arcname="bin/busybox")
    layer_bytes = layer_io.getvalue()
    layer_digest, layer_size = _blob(root, layer_bytes)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/bin/busybox", "sleep", "2147483647"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    config_digest, config_size = _blob(root, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer_size,
            }
        ],
    }
    manifest_digest, manifest_size = _blob(root, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"io.containerd.image.name": name},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    with tarfile.open(out, "w") as archive:
        for path in sorted(root.rglob("*")):
            archive.add(str(path), arcname=str(path.relative_to(root)), recursive=False)
    return out
