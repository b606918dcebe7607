"""`onepass serve [MODEL]`: a thin wrapper over `bentoml serve onepass.serve.service:Onepass`.

    onepass serve                                   # the shipped default model on http://127.0.0.1:3000
    onepass serve my-model --port 8080 --workers 2  # a package directory (or a model store tag)
    onepass serve my-model --host 0.0.0.0           # reachable from other machines, not only this one
    onepass serve my-model --bentoml --reload       # everything after --bentoml goes to bentoml serve

Before BentoML starts, this process loads the model once with the options the workers will use, so
a model, backend, device or precision that cannot work fails here, in one line (exit status 2), as
`onepass predict` would. Then it becomes the server: `bentoml serve` in this process (serve/launch.py).

Imports nothing heavy at module level: `onepass --help` builds this parser.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from onepass.runtime.load_options import add_load_arguments

if TYPE_CHECKING:
    from onepass.serve.settings import ServeSettings

SERVICE = "onepass.serve.service:Onepass"
DEFAULT_HOST = "127.0.0.1"  # this machine only: exposing the API on every interface takes --host 0.0.0.0


def add_parser(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a model over HTTP (BentoML): /predict, /visualize, a web page, KServe v2",
        description="Start the BentoML service (docs/serving.md). Everything after --bentoml is passed to `bentoml serve`.",
    )
    serve.add_argument(
        "model", nargs="?", default="default", help="model package directory, 'default', or a BentoML model store tag"
    )
    serve.add_argument("--port", type=int, default=3000, help="HTTP port (default 3000)")
    serve.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}, this machine only; 0.0.0.0 for every interface)",
    )
    add_load_arguments(serve)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes; each loads the model once and batches its own requests",
    )
    serve.add_argument("--max-upload-mb", dest="max_upload_mb", type=float, default=20.0, help="request body limit")
    serve.add_argument("--max-batch-size", dest="max_batch_size", type=int, default=16, help="adaptive batching limit")
    serve.add_argument(
        "--bentoml", nargs=argparse.REMAINDER, default=[], metavar="ARG", help="the rest goes to `bentoml serve` as is"
    )
    serve.set_defaults(run=cmd_serve)


def serve_settings(args: argparse.Namespace) -> ServeSettings:
    """The options, checked before any model is loaded (a bad model path or backend name fails here)."""
    from onepass.errors import ConfigError, unknown_name_error
    from onepass.models.package import open_package
    from onepass.runtime.predictor import BACKENDS
    from onepass.serve.settings import ServeSettings, resolve_model

    if args.backend not in BACKENDS:
        raise unknown_name_error("backend", args.backend, list(BACKENDS))
    open_package(resolve_model(args.model))  # fails now, with the file named, rather than in a worker
    # A directory travels as an absolute path (workers may start elsewhere); "default" and tags as given.
    model = str(Path(args.model).resolve()) if args.model != "default" and Path(args.model).is_dir() else args.model
    if "," in model:  # bentoml splits --arg values at commas
        raise ConfigError(f"model path {model!r} contains a comma; rename or link it to a path without one")
    settings = ServeSettings(
        model=model,
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        workers=args.workers,
        max_upload_mb=args.max_upload_mb,
        max_batch_size=args.max_batch_size,
    )
    settings.check()
    return settings


def bentoml_arguments(args: argparse.Namespace, settings: ServeSettings) -> list[str]:
    """The `bentoml` command line that serves `settings` (`bentoml serve SERVICE --port ... --arg ...`)."""
    arguments = ["serve", SERVICE, "--port", str(args.port), "--host", args.host]
    for key, value in settings.to_arguments().items():
        arguments += ["--arg", f"{key}={value}"]
    return arguments + list(args.bentoml)


def check_model_loads(settings: ServeSettings) -> str:
    """Load the model as each worker will (`onepass.load` with the same options) and run one pass.

    Every model, backend, device or precision that cannot work fails here, with the reason
    `onepass predict` gives, before any server process starts. Returns what was loaded, for the log.
    """
    import numpy as np

    import onepass
    from onepass.serve.settings import resolve_model

    predictor = onepass.load(
        resolve_model(settings.model),
        backend=settings.backend,
        device=settings.device,
        precision=settings.precision,
        compile=settings.compile,
    )
    height, width = predictor.config.input_size
    predictor.backend.run(np.zeros((1, height, width, 3), np.uint8))
    return f"{predictor.package.name} {predictor.package.version} on {predictor.backend_choice}"


def cmd_serve(args: argparse.Namespace) -> int:
    from onepass.serve.launch import exit_now, run_bentoml

    settings = serve_settings(args)
    start = time.perf_counter()
    loaded = check_model_loads(settings)
    print(f"onepass serve: checked that the model loads ({loaded}; {time.perf_counter() - start:.1f} s)", flush=True)
    # This process becomes BentoML's arbiter; what the check imported (torch, onnxruntime), the
    # arbiter imports anyway to read the service definition, so nothing is paid twice.
    exit_now(run_bentoml(bentoml_arguments(args, settings)))
