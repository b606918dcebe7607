"""The export formats: one registry, Ultralytics-style one table of formats and the options each takes.

A format is one module (`onnx_format`, `tensorrt_format`) with a frozen dataclass of its options (each
field with its default and help text) and an `export(package, options, report)` registered with
`@register_format`. `onepass export` builds its flags from those dataclasses and refuses an option the
chosen format does not take; the README's table of formats is `formats_table()`.

One concern's options may be a dataclass of their own inside a format's (`option_group`: the int8
quantisation's `Int8Options` inside the onnx format's): each of its fields is a flag with the group's
prefix (`--int8-format`), and the group is built only when one of them is given.

Imports nothing heavy: the `onepass` parser imports this module to build itself.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from onepass.errors import UserError, unknown_name_error

if TYPE_CHECKING:
    from onepass.models.package import ModelPackage


class ExportError(UserError, RuntimeError):
    """An export could not be written or did not pass its checks; the message says why."""


def option(default: Any, help: str, metavar: str | None = None) -> Any:
    """A field of a format's options dataclass: its default, its help text, and what the CLI shows
    as its value (`--calib DIR`)."""
    return dataclasses.field(default=default, metadata={"help": help, "metavar": metavar})


def option_group(options: type, prefix: str) -> Any:
    """A field of a format's options holding another frozen dataclass of options: its fields are the
    flags `--<prefix>-<name>`; the field is None unless one of them was given."""
    return dataclasses.field(default=None, metadata={"group": options, "prefix": prefix})


@dataclass(frozen=True)
class FlatOption:
    """One option as the command line sees it: a field of a format's options, or of a group in them."""

    name: str  # the flag's name: the field's, or "<prefix>_<field>" in a group (int8_format)
    field: dataclasses.Field
    hint: Any  # the field's type annotation
    group: str | None = None  # the group's field in the format's options, if in one


def flat_options(options: type) -> list[FlatOption]:
    """A format's options with every group's fields in its place, in declaration order."""
    hints = typing.get_type_hints(options)
    flat = []
    for field in dataclasses.fields(options):
        group = field.metadata.get("group")
        if group is None:
            flat.append(FlatOption(field.name, field, hints[field.name]))
            continue
        inner = typing.get_type_hints(group)
        prefix = field.metadata["prefix"]
        flat += [FlatOption(f"{prefix}_{f.name}", f, inner[f.name], field.name) for f in dataclasses.fields(group)]
    return flat


def flag(name: str) -> str:
    """An option's field name -> its command-line flag: eval_data -> --eval-data."""
    return "--" + name.replace("_", "-")


Exporter = Callable[["ModelPackage", Any, dict], None]  # (package, options, exports.json report) -> None


@dataclass(frozen=True)
class ExportFormat:
    """One row of the formats table."""

    name: str
    writes: str  # the files it adds to the package
    options: type  # the frozen dataclass of its options
    export: Exporter

    def option_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in flat_options(self.options))

    def make_options(self, given: Mapping[str, Any]) -> Any:
        """The options dataclass from the options given (the rest keep their defaults; a group is built
        when one of its options is given); an option of another format is refused with the list of this
        one's."""
        flat = {o.name: o for o in flat_options(self.options)}
        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {}
        for name, value in given.items():
            if name not in flat:
                raise ExportError(
                    f"{flag(name)} does not apply to --format {self.name} "
                    f"(its options: {', '.join(flag(n) for n in flat)})"
                )
            option = flat[name]
            if option.group is None:
                top[name] = value
            else:
                groups.setdefault(option.group, {})[option.field.name] = value
        types = {f.name: f.metadata["group"] for f in dataclasses.fields(self.options) if "group" in f.metadata}
        top |= {name: types[name](**values) for name, values in groups.items()}
        return self.options(**top)

    def option_summary(self) -> str:
        """ "`--half`, `--calib DIR`, ..." for the formats table."""
        parts = []
        for option in flat_options(self.options):
            metavar = option.field.metadata.get("metavar")
            shown = f"{flag(option.name)} {metavar}" if metavar else flag(option.name)
            parts.append(f"`{shown}`".replace("|", "\\|"))  # a | inside a Markdown table cell
        return ", ".join(parts)


EXPORT_FORMATS: dict[str, ExportFormat] = {}


def register_format(name: str, writes: str, options: type) -> Callable[[Exporter], Exporter]:
    """Register a format's `export` function, with what it writes and its options dataclass."""
    groups = [f.metadata["group"] for f in dataclasses.fields(options) if "group" in f.metadata]
    for kind in (options, *groups):
        if not (dataclasses.is_dataclass(kind) and kind.__dataclass_params__.frozen):
            raise TypeError(f"export format {name!r}: its options must be a frozen dataclass ({kind.__name__} is not)")

    def register(export: Exporter) -> Exporter:
        if name in EXPORT_FORMATS:
            raise ValueError(f"export format {name!r} registered twice")
        EXPORT_FORMATS[name] = ExportFormat(name, writes, options, export)
        return export

    return register


def export_format(name: str) -> ExportFormat:
    if name not in EXPORT_FORMATS:
        raise unknown_name_error("export format", name, list(EXPORT_FORMATS))
    return EXPORT_FORMATS[name]


@dataclass(frozen=True)
class CommandLineOption:
    """One flag of `onepass export`: an option of one format or more (same name, same type)."""

    name: str
    type: Any  # bool, int, float or str
    metavar: str | None
    help: str  # "onnx: ...; tensorrt: ..." when the formats say different things


def command_line_options() -> list[CommandLineOption]:
    """Every format's options as flags, in the order the formats declare them; an option of several
    formats is one flag, and must have the same type in each."""
    helps: dict[str, dict[str, str]] = {}  # option -> format -> help
    kinds: dict[str, tuple[Any, str | None]] = {}
    for export in EXPORT_FORMATS.values():
        for option in flat_options(export.options):
            field = option.field
            kind = _value_type(option.hint, f"{export.name}.{option.name}")
            if kinds.setdefault(option.name, (kind, field.metadata.get("metavar")))[0] is not kind:
                raise TypeError(f"export option {option.name!r} has different types in different formats")
            text, default = field.metadata["help"], field.default
            if default is not None and default is not False:
                text += f" (default {default:g})" if isinstance(default, float) else f" (default {default})"
            helps.setdefault(option.name, {})[export.name] = text
    options = []
    for name, by_format in helps.items():
        texts = set(by_format.values())
        shown = (
            f"{', '.join(by_format)}: {texts.pop()}"
            if len(texts) == 1
            else "; ".join(f"{fmt}: {text}" for fmt, text in by_format.items())
        )
        options.append(CommandLineOption(name, kinds[name][0], kinds[name][1], shown))
    return options


def _value_type(hint: Any, where: str) -> Any:
    """bool | int | float | str, from a field's annotation (`str | None` is str)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if len(args) != 1 or args[0] not in (bool, int, float, str):
        raise TypeError(f"export option {where}: type {hint} is not one the command line can give")
    return args[0]


def formats_table() -> str:
    """The README's table of export formats (tests/export/test_formats.py keeps the README in step)."""
    rows = ["| format | writes | options |", "|---|---|---|"]
    rows += [f"| `{f.name}` | {f.writes} | {f.option_summary()} |" for f in EXPORT_FORMATS.values()]
    return "\n".join(rows)
