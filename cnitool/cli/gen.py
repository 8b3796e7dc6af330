"""Generate the shell completions and man pages from the click commands.

``python -m cnitool.cli.gen`` rewrites completions/ and man/ in the repository;
``--check`` only compares and exits 1 listing the stale files (used by CI and a test).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click
from click.shell_completion import get_completion_class

from .. import __version__
from .main import COMMANDS, cli

PROG = "cnitool"
COMPLETE_VAR = "_CNITOOL_COMPLETE"
COMPLETION_FILES = {"bash": "cnitool.bash", "zsh": "_cnitool", "fish": "cnitool.fish"}

ENVIRONMENT = [
    ("NETCONFPATH", "Directory of network configurations (default /etc/cni/net.d)."),
    ("CNI_PATH", "Plugin directories separated by ':'; when unset, /opt/cni/bin."),
    ("CNI_IFNAME", "Interface name inside the netns (default eth0)."),
    ("CNI_ARGS", "K=V;K=V pairs passed to the plugins; every pair needs a key and a value."),
    ("CAP_ARGS", "Capability arguments as a JSON object (portMappings, ipRanges, mac, ...)."),
]
EXIT_STATUS = [
    ("0", "Success."),
    (
        "1",
        "A CNI error: bad input, a configuration problem or a failing plugin. One line "
        "on standard error names the plugin, the verb, the CNI code and the message.",
    ),
    ("2", "A usage error (unknown command or option, missing argument)."),
    ("130", "Interrupted."),
]


def completion_scripts() -> dict[str, str]:
    out = {}
    for shell, filename in COMPLETION_FILES.items():
        cls = get_completion_class(shell)
        assert cls is not None, shell
        out[filename] = cls(cli, {}, PROG, COMPLETE_VAR).source().rstrip("\n") + "\n"
    return out


def _esc(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in text.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _paragraphs(help_text: str) -> list[str]:
    """click help text as roff paragraphs; a paragraph starting with \\b keeps its lines."""
    out: list[str] = []
    text = help_text.replace("\x08", "\\b")
    for para in text.strip().split("\n\n"):
        lines = [ln.rstrip() for ln in para.strip("\n").split("\n")]
        if lines and lines[0].strip() == "\\b":
            out.append(".nf\n" + _esc("\n".join(ln for ln in lines[1:])) + "\n.fi")
        else:
            out.append(_esc(" ".join(ln.strip() for ln in lines)))
    return out


def _root_ctx() -> click.Context:
    return click.Context(cli, info_name=PROG, **cli.context_settings)


def _commands() -> dict[str, click.Command]:
    ctx = _root_ctx()
    cmds: dict[str, click.Command] = {}
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, name
        cmds[name] = cmd
    return cmds


def _options(cmd: click.Command, ctx: click.Context) -> list[str]:
    out = []
    for param in cmd.get_params(ctx):
        rec = param.get_help_record(ctx)
        if rec is None or (isinstance(param, click.Argument) and not rec[1]):
            continue
        out.append(
            f".TP\n.B {_esc(rec[0])}\n{_esc(rec[1])}" if rec[1] else f".TP\n.B {_esc(rec[0])}"
        )
    return out


def _usage(cmd: click.Command, ctx: click.Context) -> str:
    pieces = cmd.collect_usage_pieces(ctx)
    return f".B {_esc(ctx.command_path)}\n{_esc(' '.join(pieces))}"


def _command_sections(cmd: click.Command, ctx: click.Context) -> list[str]:
    parts = [".SH SYNOPSIS", _usage(cmd, ctx), ".SH DESCRIPTION"]
    parts.append("\n.PP\n".join(_paragraphs(cmd.help or cmd.short_help or "")))
    opts = _options(cmd, ctx)
    if opts:
        parts += [".SH OPTIONS", *opts]
    if isinstance(cmd, click.Group):
        for sub_name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, sub_name)
            if sub is None:
                continue
            sub_ctx = click.Context(sub, info_name=sub_name, parent=ctx)
            parts += [f".SS {_esc(ctx.command_path + ' ' + sub_name)}", _usage(sub, sub_ctx), ".PP"]
            parts += [p + "\n.PP" for p in _paragraphs(sub.help or sub.short_help or "")]
            parts += _options(sub, sub_ctx)
    return parts


def _header(title: str, name: str, summary: str) -> list[str]:
    return [
        f'.TH {title.upper()} 1 "" "pycni {__version__}" "cnitool manual"',
        ".SH NAME",
        f"{_esc(name)} \\- {_esc(summary)}",
    ]


def _common_tail(verb: bool) -> list[str]:
    parts = []
    if verb:
        parts.append(".SH ENVIRONMENT")
        for var, text in ENVIRONMENT:
            parts += [".TP", f".B {var}", _esc(text)]
    parts.append(".SH EXIT STATUS")
    for code, text in EXIT_STATUS:
        parts += [".TP", f".B {code}", _esc(text)]
    return parts


def man_pages() -> dict[str, str]:
    pages: dict[str, str] = {}
    cmds = _commands()
    root_ctx = _root_ctx()
    parts = _header(PROG, PROG, "run CNI plugins by hand, the way a container runtime would")
    parts += [".SH SYNOPSIS", f".B {PROG}", "[OPTIONS] COMMAND [ARGS]...", ".SH DESCRIPTION"]
    parts.append("\n.PP\n".join(_paragraphs(cli.help or "")))
    parts += [".SH OPTIONS", *_options(cli, root_ctx), ".SH COMMANDS"]
    for name in cmds:
        parts += [".TP", f".BR {PROG}\\-{_esc(name)} (1)", _esc(COMMANDS[name][1])]
    parts += _common_tail(verb=True)
    names = list(cmds)
    parts.append(".SH SEE ALSO")
    parts += [
        f".BR {PROG}\\-{_esc(n)} (1)" + ("" if i == len(names) - 1 else " ,")
        for i, n in enumerate(names)
    ]
    pages[f"{PROG}.1"] = "\n".join(parts) + "\n"
    verbs = {"add", "check", "del", "status", "gc"}
    for name, cmd in cmds.items():
        ctx = click.Context(cmd, info_name=name, parent=root_ctx)
        parts = _header(f"{PROG}-{name}", f"{PROG}-{name}", COMMANDS[name][1].rstrip("."))
        parts += _command_sections(cmd, ctx)
        parts += _common_tail(verb=name in verbs)
        parts += [".SH SEE ALSO", f".BR {PROG} (1)"]
        pages[f"{PROG}-{name}.1"] = "\n".join(parts) + "\n"
    return pages


def generated(root: Path) -> dict[Path, str]:
    files = {root / "completions" / n: t for n, t in completion_scripts().items()}
    files.update({root / "man" / n: t for n, t in man_pages().items()})
    return files


def stale(root: Path) -> list[str]:
    """Generated files that differ from what is committed (or are missing / extra)."""
    want = generated(root)
    bad = [
        str(p.relative_to(root))
        for p, text in want.items()
        if not p.is_file() or p.read_text() != text
    ]
    for p in (root / "man").glob("*.1"):
        if p not in want:
            bad.append(f"{p.relative_to(root)} (no longer generated)")
    return sorted(bad)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnitool.cli.gen", description=__doc__)
    parser.add_argument(
        "--root",
        default=str(Path(__file__).resolve().parents[2]),
        help="repository root (default: the one this module lives in)",
    )
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if args.check:
        bad = stale(root)
        for name in bad:
            sys.stderr.write(f"stale: {name}\n")
        if bad:
            sys.stderr.write("run: python -m cnitool.cli.gen\n")
        return 1 if bad else 0
    files = generated(root)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for p in (root / "man").glob("*.1"):
        if p not in files:
            p.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
