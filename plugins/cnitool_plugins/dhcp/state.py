"""The daemon's leases on disk, so that a restarted daemon takes them up again.

The reference daemon keeps its leases in memory only: after a restart it knows none, so
it neither renews them nor releases them on DEL until each pod's next ADD or CHECK. This
daemon also writes each lease to ``<socket dir>/dhcp-leases/<sha256 of client ID>.json``
(0600, written to a temporary file and renamed) whenever the server grants or renews it,
and removes the file when the lease is released, expires or is forgotten. At start it
reads them back and resumes maintenance of every unexpired lease. The socket's directory
is normally ``/run/cni`` (a tmpfs): leases do not outlive a reboot, nor should they.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import json
import logging
import os
import tempfile
from typing import Any

LOG = logging.getLogger("dhcp")
MAX_FILE = 64 * 1024


def encode_bytes(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode()


def decode_bytes(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a base64 string")
    return binascii.a2b_base64(text.encode("ascii"))


class Store:
    """One JSON file per lease in ``directory`` (made 0700 when missing)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def _path(self, client_id: str) -> str:
        name = hashlib.sha256(client_id.encode()).hexdigest()
        return os.path.join(self.directory, f"{name}.json")

    def save(self, client_id: str, record: dict[str, Any]) -> None:
        """Write a lease's record; a failure is logged (the lease itself goes on)."""
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".lease.", dir=self.directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(record, fh)
                os.replace(tmp, self._path(client_id))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            LOG.info("%s: lease not saved: %s", client_id, exc.strerror or exc)

    def delete(self, client_id: str) -> None:
        try:
            os.unlink(self._path(client_id))
        except FileNotFoundError:
            pass
        except OSError as exc:
            LOG.info("%s: lease file not removed: %s", client_id, exc.strerror or exc)

    def load(self) -> list[dict[str, Any]]:
        """Every readable record; unreadable files are logged and removed."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        except OSError as exc:
            LOG.info("leases in %s not read: %s", self.directory, exc.strerror or exc)
            return []
        records: list[dict[str, Any]] = []
        for name in names:
            if not name.endswith(".json") or name.startswith("."):
                continue
            path = os.path.join(self.directory, name)
            try:
                with open(path, "rb") as fh:
                    data = fh.read(MAX_FILE + 1)
                if len(data) > MAX_FILE:
                    raise ValueError("too large")
                record = json.loads(data)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                LOG.info("lease file %s unreadable (%s): removed", path, exc)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            records.append(record)
        return records
