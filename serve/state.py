"""What a worker serves, and how a request handler finds it.

The BentoML service (serve/service.py) loads the model once per worker and puts a `Runtime` on the
Starlette app's state (`set_runtime`); every handler reads it back from its request (`runtime_of`).
The app itself is built before any model is loaded, when the service class is decorated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request

from onepass.models.card import model_card
from onepass.models.tasks.base import OutputSpec
from onepass.runtime.predictor import Predictor
from onepass.serve.batching import ServiceUnavailable
from onepass.serve.settings import ServeSettings


@dataclass
class Runtime:
    """What the HTTP layer serves: the model package, a Predictor whose backend runs the model
    (batching concurrent requests when served), and the limits."""

    predictor: Predictor
    settings: ServeSettings
    backend_info: dict[str, Any]  # for /info: backend name, device, precision, what "auto" measured
    card: dict[str, Any] = field(init=False)  # the model card: /predict's "model", /info, the page

    def __post_init__(self) -> None:
        self.card = model_card(self.predictor.package)

    @property
    def name(self) -> str:
        return self.predictor.package.name

    @property
    def version(self) -> str:
        return self.predictor.package.version

    def output_specs(self) -> list[OutputSpec]:
        """The exported graph's outputs, every task's in the package's order (KServe v2)."""
        return [spec for task in self.predictor.config.tasks for spec in task.output_specs()]


def set_runtime(app: Starlette, runtime: Runtime) -> None:
    app.state.runtime = runtime


def runtime_of(request: Request) -> Runtime:
    """The Runtime of the app serving `request`; 503 (ServiceUnavailable) while there is none yet."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise ServiceUnavailable("the model is not loaded yet; try again")
    return runtime
