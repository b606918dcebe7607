"""onepass.export: ONNX and TensorRT export with parity checks. Importing this package registers the
built-in export formats (export/formats.py), each a light module: `onepass --help` imports them."""

from onepass.export import onnx_format, tensorrt_format  # noqa: F401  (registers them, in this order)
