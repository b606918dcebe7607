"""A bench table, built once from a result document and rendered two ways: in the terminal (rich)
and as Markdown (BENCHMARKS.md). Its rows are frozen dataclasses holding the figures, read from the
document (nothing recomputed from anything else); each row formats its own cells.

The tables themselves: bench/model_tables.py (`onepass bench MODEL`), bench/serve_tables.py
(`onepass bench serve`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

DASH = "—"


class Row(Protocol):
    def cells(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class TextRow:
    """A row whose cells are already formatted (the study's tables format as they read)."""

    values: tuple[str, ...]

    def cells(self) -> tuple[str, ...]:
        return self.values


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    note: str = ""

    def cells(self) -> list[tuple[str, ...]]:
        return [row.cells() for row in self.rows]


def mb(value: float | None) -> str:
    return DASH if value is None else f"{value / 1e6:.1f} MB"


def ms(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def signed_ms(value: float | None) -> str:
    return DASH if value is None else ("-" if value < 0 else "+") + ms(abs(value))


def times(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}x"


def gflop(value: float | None) -> str:
    return DASH if value is None else f"{value / 1e9:.3f}"


def number(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def size_text(size: Iterable[int] | None) -> str:
    return DASH if size is None else "x".join(str(v) for v in size)


def render_rich(table: Table, console) -> None:
    from rich.table import Table as RichTable

    rich_table = RichTable(title=table.title, title_justify="left")
    for column in table.columns:
        rich_table.add_column(column, overflow="fold")
    for row in table.cells():
        rich_table.add_row(*row)
    console.print(rich_table)
    if table.note:
        console.print(table.note, style="dim")


def render_markdown(table: Table) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"**{table.title}**", "", "| " + " | ".join(table.columns) + " |"]
    lines.append("|" + "---|" * len(table.columns))
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.cells()]
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines) + "\n"
