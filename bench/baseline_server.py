"""The baseline that `onepass bench serve --baseline` loads beside `onepass serve`: the thirty-line
server a user could write instead. Starlette, uvicorn and one onnxruntime session on the package's
`model.onnx`, decoding with Pillow; no batching, no BentoML, nothing of onepass.

    python -m onepass.bench.baseline_server MODEL.onnx --port 3001

`POST /predict` (multipart field `image`) answers every output that is small per image (the attribute
probabilities, the people count and boxes; not the per-pixel maps) as JSON lists: what `onepass
serve` answers with `maps=false`, less its formatting. `GET /readyz` answers once the session is
loaded. The server must earn its layers: the bench reports both and their ratio.
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np
import onnxruntime
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

SMALL = 64  # an output with at most this many values per image is answered; larger ones are maps


def build_app(onnx_path: str) -> Starlette:
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    _, height, width, _ = session.get_inputs()[0].shape  # (N, H, W, 3) uint8; H and W are fixed
    names = [output.name for output in session.get_outputs()]

    def infer(data: bytes) -> dict:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        outputs = session.run(None, {"image": np.asarray(rgb)[None]})
        return {name: value[0].tolist() for name, value in zip(names, outputs, strict=True) if value[0].size <= SMALL}

    async def predict(request: Request) -> JSONResponse:
        upload = (await request.form()).get("image")
        if upload is None or isinstance(upload, str):
            return JSONResponse({"error": "send the image as the multipart file field 'image'"}, status_code=400)
        try:  # the session runs in a thread: the event loop keeps accepting requests
            return JSONResponse(await run_in_threadpool(infer, await upload.read()))
        except OSError as error:  # Pillow: not an image
            return JSONResponse({"error": f"not an image: {error}"}, status_code=400)

    async def ready(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onepass.bench.baseline_server", description=__doc__)
    parser.add_argument("model", help="an exported model.onnx")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    args = parser.parse_args(argv)
    uvicorn.run(build_app(args.model), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
