"""onepass.runtime: one Predictor API over the inference backends."""

from onepass.runtime.backend import BackendUnavailable
from onepass.runtime.predictor import Predictor, load

__all__ = ["BackendUnavailable", "Predictor", "load"]
