"""Checks keyword arguments the way the published Snowpark examples need.

A known misspelling (``initiliaze``) is accepted as an alias with a warning
naming the right spelling; any other unknown keyword is a ``TypeError`` that
names the closest valid one.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Iterable, Mapping

from ._sql import closest

#: Misspellings found in published examples, accepted with a warning.
ALIASES: Mapping[str, str] = {"initiliaze": "initialize"}


def take_kwargs(func: str, given: Dict[str, Any], valid: Iterable[str]) -> Dict[str, Any]:
    """Returns ``given`` with aliases renamed; raises ``TypeError`` for an
    unknown keyword."""
    valid = list(valid)
    out: Dict[str, Any] = {}
    for key, value in given.items():
        if key in valid:
            name = key
        elif key in ALIASES and ALIASES[key] in valid:
            name = ALIASES[key]
            warnings.warn(
                f"{func}(): '{key}' is a misspelling of '{name}'; it is accepted as '{name}', "
                f"but write '{name}'",
                UserWarning,
                stacklevel=3,
            )
        else:
            hint = closest(key, valid)
            msg = f"{func}() got an unexpected keyword argument '{key}'"
            msg += f"; did you mean '{hint}'?" if hint else f"; valid keywords are: {', '.join(valid)}"
            raise TypeError(msg)
        if name in out:
            raise TypeError(f"{func}() got '{name}' twice (once as '{key}')")
        out[name] = value
    return out
