"""onepass: one forward pass, every answer.

import onepass
predictor = onepass.load()              # the shipped default model
result = predictor.predict(image)[0]    # semseg, depth, normals, attributes
"""

from onepass.runtime.predictor import Predictor, load

__version__ = "0.1.0"
__all__ = ["Predictor", "__version__", "load"]
