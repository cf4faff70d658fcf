"""Exceptions raised by the Freshet client."""

from __future__ import annotations

from typing import Optional


class FreshetError(Exception):
    """Base class of the client's own errors."""


class FreshetSQLException(FreshetError):
    """The server refused a statement.

    Carries the server's SQLSTATE (``sqlstate``), its message (``message``)
    and the SQL text that caused it (``query``). Named after Snowpark's
    ``SnowparkSQLException``, which is an alias of this class.
    """

    def __init__(self, message: str, *, sqlstate: Optional[str], query: Optional[str],
                 detail: Optional[str] = None, hint: Optional[str] = None) -> None:
        self.message = message
        self.sqlstate = sqlstate
        self.sql_state = sqlstate  # Snowpark's spelling
        self.query = query
        self.detail = detail
        self.hint = hint
        text = f"({sqlstate}) {message}"
        if detail:
            text += f"\nDETAIL: {detail}"
        if hint:
            text += f"\nHINT: {hint}"
        if query:
            shown = query if len(query) <= 2000 else query[:2000] + " …"
            text += f"\nSQL: {shown}"
        super().__init__(text)


SnowparkSQLException = FreshetSQLException


class FreshetClientError(FreshetError, ValueError):
    """An argument that is wrong on the client side, found before anything
    was sent to the server."""
