"""onepass's own HTTP app without BentoML: the app `onepass serve` mounts (serve/http_api.py), with the
same model start-up (serve/model_runtime.py: load, warm-up, the adaptive batcher), run by plain
uvicorn in one process. `onepass bench serve --without-bentoml` loads it beside `onepass serve`, so
that the difference between the two is what BentoML's own layers cost, and the difference between it
and the baseline server (bench/baseline_server.py) what onepass's app costs.

    python -m onepass.bench.app_server MODEL --port 3002 [--backend B] [--precision P] [--compile]

`GET /readyz` answers once the model is warm (BentoML provides it in `onepass serve`).
"""

from __future__ import annotations

import argparse
import sys

import uvicorn
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from onepass.serve.http_api import build_app
from onepass.serve.model_runtime import start_runtime
from onepass.serve.settings import ServeSettings, resolve_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onepass.bench.app_server", description=__doc__)
    parser.add_argument("model", help="a model package directory, or 'default'")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3002)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args(argv)
    settings = ServeSettings(model=args.model, backend=args.backend, precision=args.precision, compile=args.compile)
    settings.check()
    runtime, batching, _ = start_runtime(settings, resolve_model(settings.model))
    app = build_app(settings.max_upload_bytes, runtime)

    async def ready(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app.add_route("/readyz", ready, methods=["GET"])
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        batching.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
