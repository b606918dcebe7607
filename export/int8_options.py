"""The int8 quantisation's options (`onepass export MODEL --int8 --int8-...`): one frozen dataclass, the
group `int8` of the onnx format's options (export/formats.py's `option_group`), recorded beside the
file in exports.json. export/int8.py turns them into onnxruntime.quantization's arguments.

Imports nothing heavy: the `onepass` parser reads these fields to build its flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from onepass.errors import unknown_name_error
from onepass.export.formats import ExportError, option

FORMATS = ("qdq", "qoperator")
CALIBRATIONS = ("minmax", "entropy", "percentile")
WEIGHTS = ("int8", "int7", "uint8")
# what --int8-keep-fp32 may name, besides "none"; normalisation and post-processing stay fp32 always
KEEPABLE = ("first", "last", "activations")


@dataclass(frozen=True)
class Int8Options:
    """How model.int8.onnx is quantised. The defaults are benchmarks/int8_knobs.py's best setting on the
    shipped model (docs/performance.md, "Every precision pays its way"): 7-bit weights (no saturation on
    CPUs without VNNI), Relu and Clip folded, and each head's last convolution and the small convolutions
    (under 2048 weights: depthwise ones, mostly) left in fp32, which on a VNNI CPU made the file faster
    (their int8 kernels and the Quantize/Dequantize pairs around them cost more than they saved) and
    more accurate."""

    format: str = option(
        "qdq",
        "qdq: QuantizeLinear/DequantizeLinear pairs around float operators, fused by onnxruntime when it "
        "loads the graph; qoperator: the integer operators (QLinearConv, ...) written into the file",
        metavar="qdq|qoperator",
    )
    calibration: str = option(
        "minmax",
        "how activation ranges are calibrated (onnxruntime's CalibrationMethod; its quantize_static leaves "
        "entropy at 128 bins, where it equals minmax)",
        metavar="minmax|entropy|percentile",
    )
    symmetric_activations: bool = option(False, "activation ranges symmetric about 0 (uint8, zero point 128)")
    weights: str = option(
        "int7",
        "int8: full-range int8 weights, whose products saturate in onnxruntime's u8s8 kernels on CPUs without "
        "VNNI; int7: 7-bit weights in int8 (onnxruntime's reduce_range), which do not; uint8: uint8 weights "
        "(onnxruntime's U8U8 kernels)",
        metavar="int8|int7|uint8",
    )
    keep_fp32: str = option(
        "last",
        "layers left in fp32, comma-separated: first (the first convolution), last (each head's last "
        "convolution), activations (Relu and Clip run on dequantised values instead of being folded into "
        "the convolution's output range), or none",
        metavar="first,last,activations|none",
    )
    fp32_below: int = option(2048, "convolutions and matrix products with fewer weights than N stay fp32", metavar="N")

    def __post_init__(self) -> None:
        for name, value, valid in (
            ("format", self.format, FORMATS),
            ("calibration", self.calibration, CALIBRATIONS),
            ("weights", self.weights, WEIGHTS),
        ):
            if value not in valid:
                raise ExportError(str(unknown_name_error(f"--int8-{name}", value, valid)))
        for name in self.kept():
            if name not in KEEPABLE:
                raise ExportError(
                    f"--int8-keep-fp32 {self.keep_fp32}: {str(unknown_name_error('layer set', name, KEEPABLE))} "
                    "or 'none'"
                )
        if self.fp32_below < 0:
            raise ExportError(f"--int8-fp32-below {self.fp32_below}: a number of weights, 0 or more")

    def kept(self) -> tuple[str, ...]:
        """The layer sets --int8-keep-fp32 names ("none": none)."""
        names = tuple(n.strip() for n in self.keep_fp32.split(",") if n.strip())
        return () if names == ("none",) else names
