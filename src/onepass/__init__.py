"""onepass: one forward pass, every answer.

import onepass
predictor = onepass.load()              # the shipped default model
result = predictor.predict(image)[0]    # semseg, depth, normals, attributes
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Predictor", "__version__", "load"]

if TYPE_CHECKING:
    from onepass.runtime.predictor import Predictor, load


def __getattr__(name: str) -> Any:
    # Lazy: `onepass --help` and every `onepass.<stage>` import would otherwise pay for torch first.
    if name in ("Predictor", "load"):
        from onepass.runtime import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'onepass' has no attribute {name!r}")
