"""Checks keyword arguments the way the published Snowpark examples need.

A known misspelling (``initiliaze``) is accepted as an alias with a warning
naming the right spelling; any other unknown keyword is a ``TypeError`` that
names the closest valid one.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any, Callable, Dict, Iterable, Mapping, TypeVar

from ._sql import closest

F = TypeVar("F", bound=Callable[..., Any])

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


def suggest_keywords(func: F) -> F:
    """Makes an unknown keyword argument of ``func`` a ``TypeError`` that
    names the closest valid keyword (Python's own message names none)."""
    sig = inspect.signature(func)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return func
    valid = [p.name for p in sig.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for key in kwargs:
            if key not in valid:
                name = func.__qualname__.replace(".__init__", "")
                hint = closest(key, valid)
                raise TypeError(f"{name}() got an unexpected keyword argument '{key}'"
                                + (f"; did you mean '{hint}'?" if hint else f"; valid keywords are: {', '.join(valid)}"))
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
