"""Printing: exact JSON for pipes and scripts, a rich rendering for terminals.

rich is imported only inside the drawing functions, so JSON output never pays for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def write_json_result(result: dict[str, Any]) -> None:
    """The result exactly as Go cnitool prints it: 4-space indent, no trailing newline."""
    from ..spec.results import format_result

    sys.stdout.write(format_result(result))
    sys.stdout.flush()


def write_json(obj: Any) -> None:
    """Other JSON documents (lists, tables): 4-space indent plus a newline."""
    from ..spec.jsonfmt import dumps_indent

    sys.stdout.write(dumps_indent(obj) + "\n")
    sys.stdout.flush()


def console() -> Console:
    """A rich console on stdout that colours nothing by guessing (highlight off)."""
    from rich.console import Console

    return Console(highlight=False)


def note(text: str) -> None:
    """A human remark on stderr (never mixed into JSON on stdout)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


@contextmanager
def progress(label: str, total: int | None = None) -> Iterator[Callable[[str], None]]:
    """A progress line on stderr while long work runs, when stderr is a terminal (on a
    pipe or in a log: nothing). Yields ``step(text)``: call it as each item starts."""
    if not sys.stderr.isatty():
        yield lambda _text: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns: list[Any] = [TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    bar = Progress(*columns, console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=total)
    started = 0

    def step(text: str) -> None:
        nonlocal started
        if started:
            bar.advance(task)
        started += 1
        bar.update(task, description=f"{label}: {text}")

    with bar:
        yield step


def plain(text: str) -> str:
    """``text`` escaped for rich markup: paths, messages and plugin-supplied strings may
    hold brackets ("in path [/opt/cni/bin]") that rich would otherwise take for tags."""
    from rich.markup import escape

    return escape(text)


Cell = str | tuple[str, str]  # text, or (text, rich style)


def _add_row(table: Any, cells: Sequence[Cell]) -> None:
    from rich.text import Text

    table.add_row(*(Text(*cell) if isinstance(cell, tuple) else Text(cell) for cell in cells))


def _cut(cell: Cell, width: int) -> Cell:
    text, style = cell if isinstance(cell, tuple) else (cell, "")
    if len(text) > width:
        text = text[: max(width - 1, 0)] + "…"
    return (text, style) if style else text


def fit(
    columns: Sequence[str], rows: Sequence[Sequence[Cell]], width: int, squeeze: dict[int, int]
) -> tuple[list[str], list[list[Cell]]]:
    """Columns and rows cut so a boxed table of them is at most ``width`` wide: the
    columns in ``squeeze`` (index -> narrowest width) give up characters, widest first,
    and their cells end in an ellipsis; the others keep their text whole."""
    widths = [
        max([len(col)] + [len(c[0] if isinstance(c, tuple) else c) for c in (r[i] for r in rows)])
        for i, col in enumerate(columns)
    ]
    overhead = 3 * len(columns) + 1  # a border per column and one more, padding 1+1
    while sum(widths) + overhead > width:
        spare = [(widths[i] - low, i) for i, low in squeeze.items() if widths[i] > low]
        if not spare:
            break
        widths[max(spare)[1]] -= 1
    cols = [str(_cut(col, w)) for col, w in zip(columns, widths, strict=True)]
    return cols, [[_cut(c, w) for c, w in zip(row, widths, strict=True)] for row in rows]


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    squeeze: dict[int, int] | None = None,
) -> None:
    """A table on stdout whose cells fold to fit the terminal; or, with ``squeeze``, one
    line per row, the columns named there cut to fit (see :func:`fit`)."""
    from rich.table import Table
    from rich.text import Text

    out = console()
    if squeeze is not None:
        columns, rows = fit(columns, rows, out.width, squeeze)
    table = Table(title=Text(title), title_justify="left", show_lines=False)
    for col in columns:
        if squeeze is not None:
            table.add_column(Text(col), overflow="ellipsis", no_wrap=True)
        else:
            table.add_column(Text(col), overflow="fold")
    for row in rows:
        _add_row(table, row)
    out.print(table)


def short_ids(ids: Sequence[str], keep: int = 12) -> dict[str, str]:
    """Container IDs cut for a table, as ``docker ps`` shows them: the first ``keep``
    characters (after Go cnitool's ``cnitool-`` prefix, which all of its IDs share), more
    where another ID starts the same, then an ellipsis."""
    bodies = {cid: cid[8:] if cid.startswith("cnitool-") else cid for cid in set(ids)}
    out = {}
    for cid, body in bodies.items():
        width = keep
        while width < len(body) and any(
            o != cid and b.startswith(body[:width]) for o, b in bodies.items()
        ):
            width += 1
        out[cid] = (
            cid if len(body) <= width + 1 else f"{cid[: len(cid) - len(body)]}{body[:width]}…"
        )
    return out


def short_netns(path: str) -> str:
    """A named netns by its name; other paths as they are."""
    for base in ("/var/run/netns/", "/run/netns/"):
        if path.startswith(base) and "/" not in path[len(base) :]:
            return path[len(base) :]
    return path


def _iface_label(result: dict[str, Any], index: Any) -> str:
    ifaces = result.get("interfaces") or []
    if isinstance(index, int) and 0 <= index < len(ifaces):
        return str(ifaces[index].get("name", index))
    return "" if index is None else str(index)


def render_result(
    result: dict[str, Any], *, network: str, netns: str, ifname: str, container_id: str
) -> None:
    """The ADD result as tables: interfaces, addresses, routes and DNS."""
    from rich.table import Table

    out = console()
    out.print(
        f"[bold]{plain(network)}[/bold] attached to [bold]{plain(netns)}[/bold] as "
        f"{plain(ifname)} (container {plain(container_id)}, "
        f"cniVersion {plain(str(result.get('cniVersion', '?')))})"
    )
    ifaces = result.get("interfaces") or []
    if ifaces:
        t = Table(title="Interfaces", title_justify="left")
        # name and mac always; other fields (mtu, sandbox, socketPath...) when present
        keys = ["name", "mac"] + sorted({k for i in ifaces for k in i} - {"name", "mac"})
        t.add_column("#")
        for key in keys:
            t.add_column(key)
        for i, iface in enumerate(ifaces):
            _add_row(t, [str(i), *(str(iface.get(key, "")) for key in keys)])
        out.print(t)
    ips = result.get("ips") or []
    if ips:
        t = Table(title="Addresses", title_justify="left")
        for col in ("address", "gateway", "interface"):
            t.add_column(col)
        for ip in ips:
            _add_row(
                t,
                [
                    str(ip.get("address", "")),
                    str(ip.get("gateway", "")),
                    _iface_label(result, ip.get("interface")),
                ],
            )
        out.print(t)
    routes = result.get("routes") or []
    if routes:
        t = Table(title="Routes", title_justify="left")
        extras = [
            ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("dst", "gw")) for r in routes
        ]
        for col in ("destination", "gateway") + (("extra",) if any(extras) else ()):
            t.add_column(col)
        for route, extra in zip(routes, extras, strict=True):
            cells = [str(route.get("dst", "")), str(route.get("gw", ""))]
            _add_row(t, [*cells, *([extra] if any(extras) else [])])
        out.print(t)
    dns = result.get("dns") or {}
    if dns:
        t = Table(title="DNS", title_justify="left")
        t.add_column("field")
        t.add_column("value")
        for key in ("nameservers", "domain", "search", "options"):
            if key in dns:
                val = dns[key]
                text = ", ".join(map(str, val)) if isinstance(val, list) else str(val)
                _add_row(t, [key, text])
        out.print(t)
    # pre-0.3 results: ip4/ip6
    for key in ("ip4", "ip6"):
        if key in result:
            block = result[key]
            line = f"{key}: {block.get('ip', '')} gateway {block.get('gateway', '')}"
            out.print(plain(line))
            for route in block.get("routes") or []:
                via = f" via {route['gw']}" if route.get("gw") else ""
                out.print(plain(f"  route {route.get('dst', '')}{via}"))
    if not (ifaces or ips or routes or dns) and not any(k in result for k in ("ip4", "ip6")):
        out.print("(the plugins returned an empty result)")
