"""`init_from`: a new training run that starts from an existing model package's weights.

Every tensor of the package goes into the model this run's config builds (which must have the same
architecture, encoder, widths and task heads, or the run is refused with the names that do not fit);
the optimiser and the schedule start fresh at step 0. The package's path and the SHA-256 of its
weights file are the run's provenance (`training.init_from`); the new package holds the weights, so
loading it never needs the old one. Read with safetensors only (a package's weights format): nothing
is unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from onepass.data.files import file_sha256
from onepass.errors import ConfigError
from onepass.models.package import WEIGHTS_FILE, PackageError, open_package

SHOWN_NAMES = 6  # names listed per kind in an error


@dataclass(frozen=True)
class InitialWeights:
    """Where a run's step-0 weights came from: recorded as training provenance."""

    path: str  # the package directory, resolved
    sha256: str  # of its weights file
    tensors: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "tensors": self.tensors}


def load_initial_weights(model: nn.Module, package: str | Path) -> InitialWeights:
    """Copy every tensor of `package`'s weights into `model` (in place: the same Parameter objects, so
    an optimiser built already keeps them). Refuses, naming the tensors, weights that do not fit."""
    try:
        opened = open_package(package)  # a package directory ("default": the shipped model), validated
    except PackageError as error:
        raise ConfigError(f"init_from {package}: {error} (init_from names a model package directory)") from None
    path = opened.path / WEIGHTS_FILE
    if not path.is_file():
        raise ConfigError(f"init_from {package}: {path} is missing; a model package needs its weights")
    try:
        state = load_file(path)
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"init_from {package}: {path} is not a readable safetensors file ({error})") from None
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = sorted(k for k in state if k not in expected)
    reshaped = [
        f"{k} {list(state[k].shape)} (model: {list(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or reshaped:
        parts = [
            f"{len(names)} {kind}: {', '.join(names[:SHOWN_NAMES])}{', ...' if len(names) > SHOWN_NAMES else ''}"
            for kind, names in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped))
            if names
        ]
        raise ConfigError(
            f"init_from {package}: its weights do not fit the model this config builds ({'; '.join(parts)}); "
            "start from a package of the same encoder, architecture, widths and tasks"
        )
    model.load_state_dict(state, strict=True)
    return InitialWeights(str(opened.path.resolve()), file_sha256(path), len(state))
