"""Functions that build :class:`Column` expressions (Snowpark's
``snowflake.snowpark.functions``)."""

from __future__ import annotations

import builtins
import re
from typing import Any, Union

from .column import CaseExpr, Column, _to_col, _to_col_or_name, column_ref

ColumnOrName = Union[Column, str]


def col(name: str) -> Column:
    """A column by name (``"*"`` for every column)."""
    if not isinstance(name, str):
        raise TypeError(f"col() takes a column name, not {type(name).__name__}")
    return column_ref(name)


column = col


def lit(value: Any) -> Column:
    """A literal value."""
    return _to_col(value)


def sql_expr(sql: str) -> Column:
    """Raw SQL expression text (not checked on the client)."""
    return Column(f"({sql})")


def when(condition: Column, value: Any) -> CaseExpr:
    """``CASE WHEN condition THEN value …``; chain ``.when`` and ``.otherwise``."""
    return CaseExpr([(_to_col(condition), _to_col(value))])


def _call(name: str, *args: ColumnOrName, distinct: bool = False) -> Column:
    cols = [_to_col_or_name(a) for a in args]
    refs = frozenset().union(*(c._refs for c in cols)) if cols else frozenset()
    inner = ", ".join(c._sql for c in cols)
    return Column(f"{name}({'DISTINCT ' if distinct else ''}{inner})", refs=refs)


def sum(e: ColumnOrName) -> Column:  # noqa: A001 (Snowpark's name)
    return _call("sum", e)


def count(e: ColumnOrName) -> Column:
    if isinstance(e, str) and e == "*":
        return Column("count(*)")
    return _call("count", e)


def count_distinct(*cols: ColumnOrName) -> Column:
    if len(cols) != 1:
        raise NotImplementedError("count_distinct() of several columns: pass one column")
    return _call("count", *cols, distinct=True)


countDistinct = count_distinct  # noqa: N816


def avg(e: ColumnOrName) -> Column:
    return _call("avg", e)


mean = avg


def min(e: ColumnOrName) -> Column:  # noqa: A001
    return _call("min", e)


def max(e: ColumnOrName) -> Column:  # noqa: A001
    return _call("max", e)


def coalesce(*e: ColumnOrName) -> Column:
    if not e:
        raise ValueError("coalesce() needs at least one column")
    return _call("coalesce", *e)


def upper(e: ColumnOrName) -> Column:
    return _call("upper", e)


def lower(e: ColumnOrName) -> Column:
    return _call("lower", e)


def abs(e: ColumnOrName) -> Column:  # noqa: A001
    return _call("abs", e)


def length(e: ColumnOrName) -> Column:
    return _call("length", e)


def current_timestamp() -> Column:
    return Column("current_timestamp")


def call_function(function_name: str, *args: Any) -> Column:
    """Calls a SQL function by name; plain arguments are literals."""
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_$.]*$", function_name):
        raise ValueError(f"call_function(): {function_name!r} is not a function name")
    cols = [_to_col(a) for a in args]
    refs = frozenset().union(*(c._refs for c in cols)) if cols else frozenset()
    return Column(f"{function_name}({', '.join(c._sql for c in cols)})", refs=refs)


builtin = call_function

__all__ = [
    "col", "column", "lit", "sql_expr", "when", "sum", "count", "count_distinct", "avg", "mean",
    "min", "max", "coalesce", "upper", "lower", "abs", "length", "current_timestamp",
    "call_function",
]
_ = builtins
