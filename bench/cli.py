"""`onepass bench`: measured latency, throughput and memory.

    onepass bench MODEL [--backends torch,onnxruntime] [--precisions fp32,int8] [--batch-sizes 1,8]
                        [--input-sizes 128x160,256x320] [--source-size 240x320,480x640] [--device cpu|cuda]
                        [--vs-single-task [DIR ...]] [--head-cost TASK,...] [--json FILE] [--plot DIR]
    onepass bench serve (--url http://127.0.0.1:3000 | --model MODEL) [--baseline] [--without-bentoml]
                        [--concurrency 1,4,16,64]
                        [--maps true,false] [--duration S | --requests N] [--json FILE] [--plot DIR]

Imports nothing heavy at module level: the `onepass` parser imports this module to build itself.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from onepass.bench.plan import FORMATS, PRECISIONS, BenchError

SERVE = "serve"
MODEL_OPTIONS = (
    "backends", "precisions", "batch_sizes", "input_sizes", "device", "iters", "seconds", "threads",
    "metric_images", "eval_data", "vs_single_task", "head_cost", "workdir", "roofline_seconds",
)  # fmt: skip
SERVE_OPTIONS = (
    "url", "serve_model", "baseline", "without_bentoml", "concurrency", "maps", "duration", "requests", "image", "upload", "field",
    "timeout", "backend", "precision", "compile", "workers",
)  # fmt: skip
COMMON_OPTIONS = ("source_size", "warmup", "json", "plot")
FLAGS = {"serve_model": "--model"}  # options whose flag is not their name (the positional is `model`)


def flag(option: str) -> str:
    return FLAGS.get(option, "--" + option.replace("_", "-"))


HELP = "benchmark a model (backends x precisions x batch sizes) or a running server (HTTP load)"
DESCRIPTION = (
    "onepass bench MODEL: every backend and precision this machine has, in a fresh process each: "
    "p50/p90/p99 model time, images/s, pre/post-processing at each camera frame size, peak memory, file "
    "size, parity and metric cost, FLOPs per module, achieved FLOP/s against a matmul roofline. "
    "onepass bench serve: HTTP load on onepass serve (and on a baseline server with --baseline)."
)


def add_parser(commands) -> None:
    parser = commands.add_parser("bench", help=HELP, description=DESCRIPTION)
    parser.add_argument("model", help="model package directory or 'default'; or 'serve' for the HTTP load generator")
    model = parser.add_argument_group("onepass bench MODEL")
    model.add_argument("--backends", help=f"comma-separated, from: {', '.join(FORMATS)} (default: all this device has)")
    model.add_argument("--precisions", help=f"comma-separated, from: {', '.join(PRECISIONS)} (default: all each has)")
    model.add_argument("--batch-sizes", dest="batch_sizes", help="comma-separated (default 1,8)")
    model.add_argument("--input-sizes", dest="input_sizes", help="HxW,... model input sizes (default: the model's)")
    model.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    model.add_argument("--iters", type=int, help="at least this many timed runs per batch size (default 10)")
    model.add_argument("--seconds", type=float, help="and at least this long per batch size (default 2)")
    model.add_argument("--threads", type=int, help="torch threads (default: torch's; onnxruntime: one per core)")
    model.add_argument(
        "--metric-images", dest="metric_images", type=int, help="held-out scenes for the metric cost (96; 0 skips)"
    )
    model.add_argument(
        "--eval-data", dest="eval_data", help="labelled folder dataset for the metric cost (default: synthetic scenes)"
    )
    model.add_argument(
        "--vs-single-task",
        dest="vs_single_task",
        nargs="*",
        metavar="DIR",
        help="also measure one single-task model per task (given DIRs, or built with the same encoder and size)",
    )
    model.add_argument(
        "--head-cost",
        dest="head_cost",
        metavar="TASK,...",
        help="also time the model without each of these tasks' heads: latency and FLOPs with and without it",
    )
    model.add_argument("--workdir", help="keep exports and built models here (default: a temporary directory)")
    model.add_argument("--roofline-seconds", dest="roofline_seconds", type=float, help=argparse.SUPPRESS)
    serve = parser.add_argument_group("onepass bench serve")
    serve.add_argument("--url", help="a running server, e.g. http://127.0.0.1:3000")
    serve.add_argument(
        "--model",
        dest="serve_model",
        metavar="MODEL",
        help="the model served: timed in process too, and, without --url, served by `onepass serve` on a free port",
    )
    serve.add_argument(
        "--baseline",
        action="store_true",
        default=None,
        help="also load a thirty-line Starlette + onnxruntime server on MODEL's model.onnx, the same way; show both",
    )
    serve.add_argument(
        "--without-bentoml",
        action="store_true",
        default=None,
        help="also load onepass's own app, model start-up and batcher under plain uvicorn: what BentoML's layers cost",
    )
    serve.add_argument("--concurrency", help="comma-separated client counts (default 1,4,16,64)")
    serve.add_argument("--maps", help="the maps form field: true, false, or true,false for both (default true)")
    serve.add_argument("--duration", type=float, help="seconds per concurrency level (default 10)")
    serve.add_argument("--requests", type=int, help="requests per concurrency level (instead of --duration)")
    serve.add_argument("--image", help="image file to upload (default: a rendered synthetic frame)")
    serve.add_argument("--upload", choices=("png", "jpeg"), help="the rendered frame's file format (default png)")
    serve.add_argument("--field", action="append", metavar="KEY=VALUE", help="extra form field sent with each request")
    serve.add_argument("--timeout", type=float, help="per-request timeout in seconds (default 60)")
    serve.add_argument("--backend", help="backend of the in-process reference and the started server (default auto)")
    serve.add_argument("--precision", help="precision of the reference and the started server (default fp32)")
    serve.add_argument(
        "--compile",
        action="store_true",
        default=None,  # None when not given: the mode check names the options of the other mode that were given
        help="torch.compile the torch backend of the reference and the started server",
    )
    serve.add_argument("--workers", type=int, help="worker processes of the started onepass serve (default 1)")
    common = parser.add_argument_group("both")
    common.add_argument(
        "--source-size",
        dest="source_size",
        help="HxW camera frames: MODEL: a list, predict timed end to end from each (480x640); serve: the upload's size",
    )
    common.add_argument("--warmup", type=int, help="warm-up runs per batch size (3) / requests per level (16)")
    common.add_argument("--json", help="results file (default bench-NAME-DEVICE.json / bench-serve.json)")
    common.add_argument("--plot", metavar="DIR", help="write PNG charts into DIR (needs matplotlib)")
    parser.set_defaults(run=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    serve_mode = args.model == SERVE
    wrong = [o for o in (MODEL_OPTIONS if serve_mode else SERVE_OPTIONS) if getattr(args, o) is not None]
    if wrong:
        mode = "onepass bench serve" if serve_mode else "onepass bench MODEL"
        flags = ", ".join(flag(o) for o in wrong)
        raise BenchError(f"{flags}: not an option of {mode} (see onepass bench --help)")
    if args.plot:
        from onepass.bench.plots import require_matplotlib

        require_matplotlib()
    return _serve(args) if serve_mode else _model(args)


def command_line(args: argparse.Namespace, options: tuple[str, ...]) -> str:
    """The command as given (options in a fixed order), for the JSON and BENCHMARKS.md."""
    words = ["onepass", "bench", args.model]
    for name in (*options, *COMMON_OPTIONS):
        value = getattr(args, name)
        if value is None or value is False:
            continue
        if value is True:
            words.append(flag(name))
        elif isinstance(value, list):
            words += [flag(name), *value] if name != "field" else [w for v in value for w in (flag(name), v)]
        else:
            words += [flag(name), str(value)]
    return shlex.join(words)


def _model(args: argparse.Namespace) -> int:
    from rich.console import Console

    from onepass.bench.document import write_document
    from onepass.bench.model_tables import model_tables, summary_lines
    from onepass.bench.plan import BenchSettings, parse_ints, parse_list, parse_sizes
    from onepass.bench.run import run_bench
    from onepass.bench.tables import render_rich

    settings = BenchSettings(
        model=args.model,
        formats=parse_list(args.backends, "backend", tuple(FORMATS)) if args.backends else None,
        precisions=parse_list(args.precisions, "precision", PRECISIONS) if args.precisions else None,
        batch_sizes=parse_ints(args.batch_sizes, "--batch-sizes") if args.batch_sizes else (1, 8),
        input_sizes=parse_sizes(args.input_sizes) if args.input_sizes else None,
        device=args.device or "auto",
        source_sizes=frame_sizes(args.source_size) if args.source_size else ((480, 640),),
        warmup=_at_least(args.warmup, 3, 0, "--warmup"),
        iters=_at_least(args.iters, 10, 1, "--iters"),
        seconds=_at_least(args.seconds, 2.0, 0, "--seconds"),
        threads=_at_least(args.threads, None, 1, "--threads"),
        metric_images=_at_least(args.metric_images, 96, 0, "--metric-images"),
        eval_data=args.eval_data,
        vs_single_task=args.vs_single_task is not None,
        single_task_models=tuple(args.vs_single_task or ()),
        head_cost=_names(args.head_cost, "--head-cost") if args.head_cost else (),
        roofline_seconds=_at_least(args.roofline_seconds, 1.0, 0, "--roofline-seconds"),
        workdir=args.workdir,
    )
    document = run_bench(settings, command_line(args, MODEL_OPTIONS))
    console = Console(width=200)
    for line in summary_lines(document):
        console.print(line)
    for table in model_tables(document):
        render_rich(table, console)
    out = write_document(args.json or f"bench-{document.model.name}-{document.device.replace(':', '')}.json", document)
    print(f"wrote {out}")
    if args.plot:
        from onepass.bench.plots import plot_model

        for path in plot_model(document, args.plot, out.stem):
            print(f"wrote {path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from rich.console import Console

    from onepass.bench.document import write_document
    from onepass.bench.plan import parse_ints
    from onepass.bench.records import ServeLoadSettings
    from onepass.bench.serve_load import run_serve_bench
    from onepass.bench.serve_tables import serve_tables
    from onepass.bench.tables import render_rich

    if not args.url and not args.serve_model:
        raise BenchError(
            "onepass bench serve needs --url URL (a running server, e.g. --url http://127.0.0.1:3000) "
            "or --model MODEL (the bench starts onepass serve MODEL)"
        )
    if args.duration is not None and args.requests is not None:
        raise BenchError("give --duration or --requests, not both")
    fields = []
    for item in args.field or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BenchError(f"--field {item!r} must be KEY=VALUE")
        if key == "maps":
            raise BenchError(f"--field {item!r}: the maps field is set by --maps (e.g. --maps false, or true,false)")
        fields.append((key, value))
    sizes = frame_sizes(args.source_size) if args.source_size else ((480, 640),)
    if len(sizes) != 1:
        raise BenchError(f"--source-size {args.source_size!r}: onepass bench serve uploads one frame size")
    settings = ServeLoadSettings(
        url=args.url,
        model=args.serve_model,
        baseline=bool(args.baseline),
        without_bentoml=bool(args.without_bentoml),
        concurrency=parse_ints(args.concurrency, "--concurrency") if args.concurrency else (1, 4, 16, 64),
        maps=_booleans(args.maps, "--maps") if args.maps else (True,),
        duration=None if args.requests is not None else _at_least(args.duration, 10.0, 0.1, "--duration"),
        requests=_at_least(args.requests, None, 1, "--requests"),
        warmup=_at_least(args.warmup, 16, 0, "--warmup"),
        image=args.image,
        source_size=sizes[0],
        upload=args.upload or "png",
        fields=tuple(fields),
        timeout=_at_least(args.timeout, 60.0, 0.1, "--timeout"),
        backend=args.backend or "auto",
        precision=args.precision or "fp32",
        compile=bool(args.compile),
        workers=_at_least(args.workers, 1, 1, "--workers"),
    )
    document = run_serve_bench(
        settings, command_line(args, SERVE_OPTIONS), lambda message: print(message, file=sys.stderr, flush=True)
    )
    console = Console(width=200)
    for table in serve_tables(document):
        render_rich(table, console)
    out = write_document(args.json or "bench-serve.json", document)
    print(f"wrote {out}")
    if args.plot:
        from onepass.bench.plots import plot_serve

        for path in plot_serve(document, args.plot, out.stem):
            print(f"wrote {path}")
    return 0


def frame_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """ "480x640" or "240x320,480x640" -> ((480, 640), ...): camera frames, any positive size."""
    sizes = []
    for item in text.split(","):
        try:
            height, width = (int(v) for v in item.strip().lower().split("x"))
        except ValueError:
            raise BenchError(f"--source-size {item.strip()!r} must look like HxW, e.g. 480x640") from None
        if min(height, width) < 1:
            raise BenchError(f"--source-size {item.strip()!r}: both sides must be positive")
        sizes.append((height, width))
    return tuple(sizes)


def _names(text: str, flag: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise BenchError(f"{flag}: give one or more task names, comma-separated")
    return names


def _booleans(text: str, flag: str) -> tuple[bool, ...]:
    values = {"true": True, "false": False}
    found = tuple(v.strip().lower() for v in text.split(",") if v.strip())
    wrong = [v for v in found if v not in values]
    if not found or wrong:
        raise BenchError(f"{flag} {text!r}: give true, false, or true,false")
    return tuple(values[v] for v in dict.fromkeys(found))


def _at_least(value, default, minimum, flag: str):
    if value is None:
        return default
    if value < minimum:
        raise BenchError(f"{flag} {value}: must be at least {minimum}")
    return value
