"""Uploaded bytes -> an RGB image: the one decoder (onepass.data.image), with the server's limit named
in its errors. BadImage and ImageTooLarge carry the HTTP status (400, 413) the server answers with.

We decode ourselves rather than use BentoML's PIL input type, which answers a bad upload with a 500
(DESIGN.md, "Known pitfalls").
"""

from __future__ import annotations

from PIL import Image

from onepass.data.image import decode_image

UPLOAD_TOO_LARGE = (
    "{source} is {width}x{height} = {pixels} pixels, over this server's limit of {max_pixels} (max_image_pixels); "
    "downscale it before uploading"
)


def decode_upload(data: bytes, max_pixels: int) -> Image.Image:
    """An upload's bytes -> an upright RGB image of at most `max_pixels`; BadImage (400) or ImageTooLarge
    (413) with a message for anything else."""
    return decode_image(data, max_pixels, "the upload", reader="this server", too_large=UPLOAD_TOO_LARGE)
