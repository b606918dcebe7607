"""What a user can get wrong: one base class, so that the CLI prints any of them as one line and
exits 2, and every registry's "unknown name" error reads the same. Imports nothing, so that every
stage (and `onepass --help`) can use it at no cost.

Each stage derives its own errors from these (DatasetError, PackageError, ExportError, ...); the
message names the input and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """An error the user can fix: a bad option, file, dataset, model package or input."""


class ConfigError(UserError, ValueError):
    """A configuration value is wrong; the message names it and says what is allowed."""


def unknown_name_error(kind: str, name: str, valid: Iterable[str]) -> ConfigError:
    """ "unknown X 'nmae'; did you mean 'name'? (valid: ...)" — for every registry."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint} (valid: {', '.join(valid)})")
