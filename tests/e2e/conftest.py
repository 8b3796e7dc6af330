"""Fixtures of the e2e tests that share a private node (doctor, inspect)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from node_helpers import Node, make_node


@pytest.fixture
def node(tmp_path: Path, netns_factory: Callable[[], str]) -> Node:
    """A private node with the networks "live" and "gonet" (see node_helpers)."""
    return make_node(tmp_path, netns_factory())
