"""`onepass serve [MODEL]`: a thin wrapper over `bentoml serve onepass.serve.service:Onepass`.

    onepass serve                                   # the shipped default model on http://0.0.0.0:3000
    onepass serve my-model --port 8080 --workers 2  # a package directory (or a model store tag)
    onepass serve my-model --bentoml --reload       # everything after --bentoml goes to bentoml serve

Imports nothing heavy at module level: `onepass --help` builds this parser.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SERVICE = "onepass.serve.service:Onepass"

USER_ERRORS: tuple[type[BaseException], ...] = ()  # model and option errors are PackageError / ConfigError


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
    serve.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    serve.add_argument("--backend", default="auto", help="runtime backend (default auto: the fastest available)")
    serve.add_argument("--device", default="auto", help="auto (a GPU if there is one) | cpu | cuda | cuda:N")
    serve.add_argument("--precision", default="fp32", help="backend precision, e.g. fp32, bf16, fp16, int8")
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


def bentoml_command(args: argparse.Namespace) -> list[str]:
    """Validate the options (a bad model or backend fails here, in one line) -> the bentoml command."""
    from onepass.models.package import open_package
    from onepass.models.tasks.base import ConfigError, unknown_name_error
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
        workers=args.workers,
        max_upload_mb=args.max_upload_mb,
        max_batch_size=args.max_batch_size,
    )
    settings.check()
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--port", str(args.port), "--host", args.host]
    for key, value in settings.to_arguments().items():
        command += ["--arg", f"{key}={value}"]
    return command + list(args.bentoml)


def cmd_serve(args: argparse.Namespace) -> int:
    command = bentoml_command(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)  # become the server: signals and the exit status are bentoml's own
    return 0  # not reached
