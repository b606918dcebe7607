"""Fuzz target: the upload decoder, serve/images.py `decode_upload(data, max_pixels)` (the one image
decoder of data/image.py, with the server's limit).

Contract: it returns an upright 8-bit RGB PIL image of at least one and at most `max_pixels`
pixels, which the runtime's preprocessing accepts, or it raises BadImage (400) / ImageTooLarge
(413) with a message. Any other exception, result or a hang is a finding. See docs/robustness.md.

    nice -n 10 timeout 660 .venv/bin/python fuzz/upload.py fuzz/corpus/upload \
        -max_total_time=600 -timeout=30 -rss_limit_mb=3072 -max_len=65536 -print_final_stats=1
"""

from __future__ import annotations

import random

import atheris

# Coverage comes from the Python code of Pillow's format plugins and of onepass; Pillow's C
# decoders (libpng, libjpeg, libtiff, libwebp) are not instrumented (they are fuzzed upstream).
with atheris.instrument_imports(include=["PIL", "onepass"]):
    import numpy as np
    from PIL import Image

    Image.init()  # imports every format plugin now, while imports are instrumented
    from onepass.data.image import BadImage
    from onepass.runtime.predictor import preprocess
    from onepass.serve.images import decode_upload
    from onepass.serve.settings import ServeSettings

from campaign import ContractBroken, main
from mutations import mutate_image_bytes
from seeds import upload_seeds

MAX_PIXELS = ServeSettings().max_image_pixels  # the server's default limit
MODEL_INPUT = (128, 160)  # the shipped model's input size: the next step an upload goes through


def check(data: bytes) -> None:
    try:
        image = decode_upload(data, MAX_PIXELS)
    except BadImage as error:
        if not str(error).strip() or error.status not in (400, 413):
            raise ContractBroken(f"BadImage with status {error.status} and message {str(error)!r}") from None
        return
    if not isinstance(image, Image.Image) or image.mode != "RGB":
        raise ContractBroken(f"returned {type(image).__name__} in mode {getattr(image, 'mode', None)}")
    width, height = image.size
    if not (width >= 1 and height >= 1 and width * height <= MAX_PIXELS):
        raise ContractBroken(f"returned a {width}x{height} image (limit {MAX_PIXELS} pixels)")
    pixels = np.asarray(image)
    if pixels.shape != (height, width, 3) or pixels.dtype != np.uint8:
        raise ContractBroken(f"pixels are {pixels.shape} {pixels.dtype} for a {width}x{height} RGB image")
    batch, sizes = preprocess([image], MODEL_INPUT)
    if batch.shape != (1, *MODEL_INPUT, 3) or sizes != [(height, width)]:
        raise ContractBroken(f"preprocess gave {batch.shape} {sizes} for a {width}x{height} image")


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    return mutate_image_bytes(data, max_size, random.Random(seed))


if __name__ == "__main__":
    main("upload", check, upload_seeds, mutate)
