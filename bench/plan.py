"""What `onepass bench MODEL` measures: one table of formats (backend + precision), built from the
runtime's backend registry, and whether each can run on this machine — the backend's own `refusal`,
plus the bench's one rule of its own (by default, no emulated bf16).

Imports nothing heavy at module level (the CLI parser imports this module's names).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from onepass.errors import UserError
from onepass.runtime.backend import BACKEND_TYPES, device_kind


class BenchError(UserError, ValueError):
    """A bench option or input is wrong or cannot be measured here; the message says which and why."""


@dataclass(frozen=True)
class Format:
    """One row of the formats table: how `onepass.load` runs it and which precisions it has."""

    backend: str  # onepass.load's backend
    compile: bool
    precisions: tuple[str, ...]
    devices: tuple[str, ...]  # "cpu", "cuda"
    file: str  # what the "size" column measures: the weights or the exported file for the precision


def _formats() -> dict[str, Format]:
    """One format per registered backend, and a "-compile" one for a backend with a compile option."""
    formats = {}
    for name, backend in BACKEND_TYPES.items():
        for compiled in (False, True) if "compile" in backend.options else (False,):
            formats[f"{name}-compile" if compiled else name] = Format(
                name, compiled, backend.precisions, backend.devices, backend.runs_from
            )
    return formats


FORMATS: dict[str, Format] = _formats()
PRECISIONS = tuple(dict.fromkeys(p for spec in FORMATS.values() for p in spec.precisions))


@dataclass(frozen=True)
class Variant:
    format: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.format} {self.precision}"


@dataclass(frozen=True)
class Planned:
    variant: Variant
    skip: str | None = None  # the reason it cannot run here; None = it runs


@dataclass(frozen=True)
class BenchSettings:
    """Everything `onepass bench MODEL` was asked for (the CLI fills it; tests build it directly)."""

    model: str
    formats: tuple[str, ...] | None = None  # None: every format this device has
    precisions: tuple[str, ...] | None = None  # None: every precision each format has here
    batch_sizes: tuple[int, ...] = (1, 8)
    input_sizes: tuple[tuple[int, int], ...] | None = None  # None: the model's own input size
    device: str = "auto"
    # the camera frames that predict is timed from, end to end (pre-processing resizes from each, and
    # post-processing back to it)
    source_sizes: tuple[tuple[int, int], ...] = ((480, 640),)
    warmup: int = 3
    iters: int = 10  # at least this many timed runs ...
    seconds: float = 2.0  # ... and at least this long, per batch size and source size
    threads: int | None = None  # torch threads (onnxruntime uses one per usable core)
    metric_images: int = 96  # held-out scenes for the metric cost of each precision (0: skip)
    eval_data: str | None = None  # a labelled folder dataset for the metric cost (default: synthetic scenes)
    vs_single_task: bool = False
    single_task_models: tuple[str, ...] = ()  # given single-task packages (empty: build them)
    head_cost: tuple[str, ...] = ()  # tasks whose head's cost is measured: the model timed without each
    roofline_seconds: float = 1.0
    workdir: str | None = None


def parse_list(text: str, what: str, valid: tuple[str, ...]) -> tuple[str, ...]:
    """ "a,b" -> ("a", "b"), each checked against `valid` with a close-match suggestion."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise BenchError(f"{what}: empty list (valid: {', '.join(valid)})")
    for name in names:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise BenchError(f"unknown {what} {name!r}{hint} valid: {', '.join(valid)}")
    return names


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise BenchError(f"{what} {text!r} must be comma-separated integers, e.g. 1,8") from None
    if not values or min(values) < 1:
        raise BenchError(f"{what} {text!r}: give one or more integers >= 1")
    return values


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    sizes = []
    for item in text.split(","):
        try:
            height, width = (int(v) for v in item.strip().lower().split("x"))
        except ValueError:
            raise BenchError(f"input size {item!r} must look like HxW, e.g. 128x160") from None
        if min(height, width) < 32 or height % 32 or width % 32:
            raise BenchError(f"input size {item!r}: H and W must be multiples of 32 (the encoder's stride)")
        sizes.append((height, width))
    return tuple(sizes)


def plan_variants(settings: BenchSettings, device: str) -> list[Planned]:
    """Every (format, precision) asked for, each with the reason it cannot run here (or None).

    Formats and precisions the user named explicitly are measured when they can run at all; the
    defaults leave out what would only measure an emulation (bf16 on a CPU without bf16 units)."""
    kind = device_kind(device)
    formats = settings.formats or tuple(f for f, spec in FORMATS.items() if kind in spec.devices)
    planned = []
    for name in formats:
        spec = FORMATS[name]
        precisions = settings.precisions or spec.precisions
        for precision in precisions:
            if precision not in spec.precisions:
                continue  # e.g. int8 for torch: not a combination anyone asks for; not listed
            variant = Variant(name, precision)
            planned.append(Planned(variant, skip_reason(variant, device, explicit=settings.precisions is not None)))
    if not planned:
        raise BenchError(
            "no format has the precisions asked for: "
            + "; ".join(f"{n}: {', '.join(FORMATS[n].precisions)}" for n in formats)
        )
    return planned


def skip_reason(variant: Variant, device: str, explicit: bool) -> str | None:
    """Why a variant cannot be measured here (the backend's refusal on this machine; the bench exports
    whatever file the package lacks), or None."""
    spec = FORMATS[variant.format]
    options = {"compile": True} if spec.compile else {}
    reason = BACKEND_TYPES[spec.backend].refusal(None, device, variant.precision, **options)
    if reason is not None:
        return reason
    if device_kind(device) == "cpu" and not explicit:  # by default, no precision this CPU's units cannot speed up
        from onepass.runtime.cpu import missing_cpu_units

        missing = missing_cpu_units(variant.precision)
        if missing:
            return f"{missing}; --precisions {variant.precision} measures it anyway"
    return None
