"""The import layers: the tool reaches the plugins only through their read-only views
(``cnitool_plugins.inspect``), and the plugins never import the tool's CLI, click or rich."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(package: Path) -> Iterator[tuple[str, str]]:
    """(file, imported module) for every import statement under ``package``."""
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield str(path.relative_to(ROOT)), alias.name
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    yield str(path.relative_to(ROOT)), f"{node.module}.{alias.name}"


def test_the_tool_uses_only_the_plugins_views() -> None:
    """The CLI reads through ``cnitool_plugins.inspect``; what runs plugins (the warm
    service and its launcher client) enters them through ``cnitool_plugins._launch``, as
    an installed launcher does; nothing else of the library imports the plugins."""
    reached = {(f, m) for f, m in imports(ROOT / "cnitool") if m.split(".")[0] == "cnitool_plugins"}
    assert any(f.startswith("cnitool/cli/") for f, _ in reached), "the views are used"
    allowed = {
        "cnitool/cli/": "cnitool_plugins.inspect",
        "cnitool/warm/": "cnitool_plugins._launch",
    }
    wrong = {
        (f, m)
        for f, m in reached
        if not any(f.startswith(d) and m.startswith(ok) for d, ok in allowed.items())
    }
    assert wrong == set()


def test_plugins_never_import_the_cli_click_or_rich() -> None:
    banned = ("cnitool.cli", "click", "rich")
    wrong = {
        (f, m)
        for f, m in imports(ROOT / "plugins")
        if any(m == b or m.startswith(b + ".") for b in banned)
    }
    assert wrong == set()


def relative_imports(package: Path) -> Iterator[tuple[str, str]]:
    """(file, ``module.name``) for every ``from ..x import name`` under ``package``."""
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level and node.module:
                for alias in node.names:
                    yield path.name, f"{node.module}.{alias.name}"


def test_the_cli_finds_and_runs_plugins_through_cniconfig() -> None:
    """Plugin lookup, exec and VERSION go through libcni's CNIConfig, not around it:
    the CLI takes only types (errors, VersionInfo) from the invoke layer."""
    allowed = {"invoke.PluginExecError", "invoke.exec.VersionInfo"}
    used = {(f, m) for f, m in relative_imports(ROOT / "cnitool" / "cli") if m.startswith("invoke")}
    assert {(f, m) for f, m in used if m not in allowed} == set()


def test_every_plugin_has_the_same_shape() -> None:
    """``verbs.py`` holds the verbs; ``__main__`` wires them through ``_lib.entry`` (or,
    for the noop test plugin, functions of its own), never by module or function names
    in strings, and importing it loads no verb module (VERSION stays cheap)."""
    import importlib
    import subprocess
    import sys

    packages = sorted(
        p.parent.name for p in (ROOT / "plugins" / "cnitool_plugins").glob("*/__main__.py")
    )
    assert len(packages) >= 9
    for name in packages:
        pkg = ROOT / "plugins" / "cnitool_plugins" / name
        assert (pkg / "verbs.py").is_file(), name
        main = importlib.import_module(f"cnitool_plugins.{name}.__main__")
        wired = {main.__name__, "cnitool_plugins._lib.entry"}
        for verb in ("add", "check", "delete", "status", "gc"):
            func = getattr(main.PLUGIN, verb)
            if func is not None:
                assert func.__module__ in wired, (name, verb)
        calls = {
            node.func.id
            for node in ast.walk(ast.parse((pkg / "__main__.py").read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert not calls & {"import_module", "lazy_verb", "__import__"}, name
    mains = "; ".join(f"import cnitool_plugins.{n}.__main__" for n in packages)
    probe = f"import sys; {mains}; print([m for m in sys.modules if m.endswith('.verbs')])"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
