"""BENCHMARKS.md from the bench's JSON documents: `python -m onepass.bench.report --out BENCHMARKS.md
RESULT.json ...`. Every number in the file is read from those documents (nothing typed by hand); the
GPU section says how to fill it until a CUDA run's JSON is given."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from onepass.bench.document import read_document
from onepass.bench.model_tables import model_tables, summary_lines
from onepass.bench.pipeline_tables import pipeline_tables
from onepass.bench.plots import model_plot_names, serve_plot_name
from onepass.bench.records import Document, ModelBenchDocument, PipelineBenchDocument, ServeBenchDocument
from onepass.bench.serve_tables import serve_tables
from onepass.bench.tables import render_markdown
from onepass.errors import UserError
from onepass.runtime.cpu import features_text

SCRIPT = "scripts/benchmarks.sh"


@dataclass(frozen=True)
class Result:
    document: Document
    stem: str  # the JSON file's name without .json: the --plot files are named after it


def _machine_lines(document: Document) -> list[str]:
    machine, found = document.machine, document.versions
    elapsed = getattr(document, "elapsed_s", None)
    lines = [
        f"- date: {document.date}" + (f"; took {elapsed:.0f} s" if elapsed is not None else ""),
        f"- machine: {machine.cpu}, {machine.logical_cores} logical cores ({machine.usable_cores} usable), "
        f"{machine.memory_bytes / 2**30:.0f} GiB memory",
    ]
    if isinstance(document, ServeBenchDocument | PipelineBenchDocument):  # a model document's summary lines say it
        lines.append(f"- CPU features: {features_text(machine.cpu_flags)}")
    if machine.load_average:
        load = ", ".join(f"{v:.1f}" for v in machine.load_average)
        lines.append(f"- load average when the run started (1, 5, 15 min): {load}")
    if machine.gpu:
        gpu = machine.gpu
        lines.append(
            f"- GPU: {gpu.name}, {gpu.memory_bytes / 2**30:.0f} GiB, compute capability {gpu.capability}, CUDA {gpu.cuda}"
        )
    lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in found.items() if k != "onnxruntime_providers"))
    if found.get("onnxruntime_providers"):
        lines.append(f"- onnxruntime providers: {found['onnxruntime_providers']}")
    if document.source:
        source = document.source
        lines.append(
            f"- onepass commit {source.commit[:12]}" + (" (with local changes)" if source.local_changes else "")
        )
    lines.append(f"- command: `{document.command}`")
    return lines


def _plots(result: Result, plots: Path | None, relative_to: Path) -> list[str]:
    """The --plot PNGs of this result (named after its JSON file), where they exist."""
    if plots is None:
        return []
    if isinstance(result.document, PipelineBenchDocument):
        names = []
    elif isinstance(result.document, ServeBenchDocument):
        names = [serve_plot_name(result.stem)]
    else:
        names = list(model_plot_names(result.stem))
    return [f"![{n}]({os.path.relpath(plots / n, relative_to)})" for n in names if (plots / n).is_file()]


def document_section(result: Result, plots: Path | None, relative_to: Path) -> str:
    document = result.document
    parts = ["\n".join(_machine_lines(document)), ""]
    if isinstance(document, ServeBenchDocument):
        parts += [render_markdown(table) for table in serve_tables(document)]
    elif isinstance(document, PipelineBenchDocument):
        parts += [render_markdown(table) for table in pipeline_tables(document)]
    else:
        parts.append("\n".join(f"- {line}" for line in summary_lines(document)) + "\n")
        parts += [render_markdown(table) for table in model_tables(document)]
    parts += [line + "\n" for line in _plots(result, plots, relative_to)]
    return "\n".join(parts)


def _heading(document: ModelBenchDocument) -> str:
    settings = document.settings
    formats = ", ".join(settings.formats or ["every backend"])
    precisions = ", ".join(settings.precisions or ["every precision"])
    extra = []
    if settings.input_sizes:
        extra.append("input sizes " + ", ".join("x".join(map(str, s)) for s in settings.input_sizes))
    if len(settings.source_sizes) > 1:
        extra.append("source sizes " + ", ".join("x".join(map(str, s)) for s in settings.source_sizes))
    if settings.vs_single_task:
        extra.append("one pass vs single-task models")
    if settings.head_cost:
        extra.append("the cost of the " + ", ".join(settings.head_cost) + " head")
    return f"{document.model.name}: {formats} ({precisions})" + (f"; {'; '.join(extra)}" if extra else "")


def build_report(results: list[Result], plots: Path | None, relative_to: Path) -> str:
    models = [r for r in results if isinstance(r.document, ModelBenchDocument)]
    cpu = [r for r in models if not r.document.device.startswith("cuda")]
    gpu = [r for r in models if r.document.device.startswith("cuda")]
    serve = [r for r in results if isinstance(r.document, ServeBenchDocument)]
    pipelines = [r for r in results if isinstance(r.document, PipelineBenchDocument)]
    out = [
        "# Benchmarks",
        "",
        f"Generated by `bash {SCRIPT}` (`python -m onepass.bench.report`) from the JSON results of `onepass bench` "
        "runs; every number below is read from those files. Do not edit by hand: re-run the script. "
        "Timings depend on how busy the machine was; each run lists its load average.",
        "",
        "Each performance goal, next to its latest figure and the command behind it: "
        '[docs/performance.md](docs/performance.md), "Goals, and where each stands".',
        "",
        "How the figures are taken: each backend and precision runs in a fresh worker process (so peak memory is its "
        "own), on synthetic camera frames; a warm-up, then timed runs of `predict` through the Predictor's three "
        "phases: preprocessing, model (`run`) and post-processing, at each camera frame size. Exports the model lacks "
        "are made in a work directory first (the export time is in the JSON). FLOPs are counted with torch's "
        "FlopCounterMode, per module too; the roofline is the best FLOP/s of a large matmul on the same device in the "
        "same run.",
        "",
        "## CPU",
        "",
    ]
    if not cpu:
        out += [f"Not measured yet: run `bash {SCRIPT} cpu`.", ""]
    for result in cpu:
        out += [f"### {_heading(result.document)}", ""]
        out.append(document_section(result, plots, relative_to))
    out += ["## HTTP serving", ""]
    if not serve:
        out += [f"Not measured yet: `bash {SCRIPT}` runs it when `onepass serve` is available.", ""]
    for result in serve:
        out.append(document_section(result, plots, relative_to))
    out += ["## Batch prediction: `onepass predict` on files and video", ""]
    if not pipelines:
        out += [
            "Not measured yet: `python benchmarks/predict_throughput.py --json R.json` and "
            "`python benchmarks/video_throughput.py --model MODEL --json R.json` write these results.",
            "",
        ]
    for result in pipelines:
        out.append(document_section(result, plots, relative_to))
    out += ["## GPU", ""]
    if not gpu:
        out += [
            f"Not measured yet: no CUDA machine has run the bench. On one, `bash {SCRIPT} gpu` runs the same "
            "commands with `--device cuda` (PyTorch eager and compiled in fp32/fp16/bf16, ONNX Runtime with the "
            "CUDA / TensorRT execution providers, native TensorRT engines) and regenerates this file with the "
            "results here, next to the CPU ones.",
            "",
        ]
    for result in gpu:
        gpu_name = result.document.machine.gpu.name if result.document.machine.gpu else "GPU"
        out += [f"### {_heading(result.document)} on {gpu_name}", ""]
        out.append(document_section(result, plots, relative_to))
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onepass.bench.report", description=__doc__)
    parser.add_argument("results", nargs="+", help="JSON files written by onepass bench")
    parser.add_argument("--out", default="BENCHMARKS.md")
    parser.add_argument("--plots", help="folder with the --plot PNGs to link")
    args = parser.parse_args(argv)
    try:
        results = [Result(read_document(path), Path(path).stem) for path in args.results]
    except UserError as error:
        print(error, file=sys.stderr)
        return 2
    out = Path(args.out)
    text = build_report(results, Path(args.plots) if args.plots else None, out.resolve().parent)
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
