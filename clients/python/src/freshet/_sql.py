"""SQL text helpers shared by the client: identifiers, names and literals.

Identifiers follow SQL's rules: an unquoted name is case-insensitive (the
server folds it to lower case), so ``"USER_ID"`` finds ``user_id``. A name
that is not a plain identifier (spaces, punctuation, a leading digit) is
quoted verbatim; a name already written with double quotes is kept as is.
"""

from __future__ import annotations

import datetime
import decimal
import difflib
import math
import re
from typing import Any, Iterable, List, Optional, Sequence, Union

# PostgreSQL's unquoted identifier: a letter (any script) or underscore, then
# letters, digits, underscores or dollars.
_PLAIN = re.compile(r"^[^\W\d][\w$]*$")
# Only ASCII letters fold to lower case (PostgreSQL's rule in UTF-8: an
# unquoted Größe is stored as größe).
_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_QUOTED = re.compile(r'^"(?:[^"]|"")+"$')

NameLike = Union[str, Sequence[str]]


def quote_ident(name: str) -> str:
    """The SQL form of one identifier (always double-quoted, case-folded
    when the name is a plain identifier)."""
    if not isinstance(name, str) or name == "":
        raise ValueError(f"an identifier must be a non-empty string, not {name!r}")
    if _QUOTED.match(name):
        return name
    if _PLAIN.match(name):
        return '"' + name.translate(_FOLD) + '"'
    return '"' + name.replace('"', '""') + '"'


def normalize_ident(name: str) -> str:
    """The name the server stores for ``name`` (plain names fold to lower
    case, quoted names lose their quotes)."""
    q = quote_ident(name)
    return q[1:-1].replace('""', '"')


def _split_dotted(name: str) -> List[str]:
    parts: List[str] = []
    cur = ""
    in_q = False
    i = 0
    while i < len(name):
        c = name[i]
        if c == '"':
            if in_q and i + 1 < len(name) and name[i + 1] == '"':
                cur += '""'
                i += 2
                continue
            in_q = not in_q
            cur += c
        elif c == "." and not in_q:
            parts.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    if in_q:
        raise ValueError(f"unbalanced double quote in name {name!r}")
    parts.append(cur)
    return parts


def name_parts(name: NameLike) -> List[str]:
    """A dotted name (``db.schema.table``, quoted parts allowed) or a list of
    parts, as a list of parts."""
    if isinstance(name, str):
        parts = _split_dotted(name)
    elif isinstance(name, (list, tuple)):
        parts = list(name)
    else:
        raise TypeError(f"a name must be a string or a list of strings, not {type(name).__name__}")
    if not 1 <= len(parts) <= 3 or any(not isinstance(p, str) or p == "" for p in parts):
        raise ValueError(
            f"invalid name {name!r}: expected 'name', 'schema.name' or 'database.schema.name'"
        )
    return parts


def quote_name(name: NameLike) -> str:
    """The SQL form of a possibly qualified object name."""
    return ".".join(quote_ident(p) for p in name_parts(name))


def literal(value: Any) -> str:
    """A SQL literal for a Python value (used where parameters cannot go,
    such as DDL options and lazily built query text)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "'NaN'::double precision"
        if math.isinf(value):
            return ("'Infinity'" if value > 0 else "'-Infinity'") + "::double precision"
        return repr(value) + "::double precision"
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime.datetime):
        kind = "timestamptz" if value.tzinfo is not None else "timestamp"
        return f"'{value.isoformat(sep=' ')}'::{kind}"
    if isinstance(value, datetime.date):
        return f"'{value.isoformat()}'::date"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "'\\x" + bytes(value).hex() + "'::bytea"
    try:  # numpy scalars
        import numpy as np  # noqa: F401

        if hasattr(value, "item"):
            return literal(value.item())
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"cannot write a {type(value).__name__} as a SQL literal")


def closest(word: str, choices: Iterable[str]) -> Optional[str]:
    """The choice most like ``word`` (case-insensitive), if any is close."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[match[0]] if match else None
