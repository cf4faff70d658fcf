"""Column expressions, compiled to SQL text.

A :class:`Column` is a piece of SQL plus what it needs to be placed in a
query: the plain column names it references (checked against the
DataFrame's columns before anything is sent) and, for ``df["x"]``, which
DataFrame the reference belongs to (so a join can qualify it).
"""

from __future__ import annotations

import re
from typing import Any, FrozenSet, Iterable, Optional, Union

from .._sql import literal, normalize_ident, quote_ident

# A reference to a DataFrame's relation inside expression text: rendered as
# `"alias".` when that relation is in the FROM clause, or dropped otherwise.
_QUAL = re.compile("\x01([^\x02]*)\x02")


def render(sql: str, visible: Iterable[str] = ()) -> str:
    """Expression text with DataFrame qualifiers resolved for a query whose
    FROM clause has the relations ``visible``."""
    seen = set(visible)
    return _QUAL.sub(lambda m: f'"{m.group(1)}".' if m.group(1) in seen else "", sql)


class Column:
    """A column expression (Snowpark's ``Column``)."""

    __slots__ = ("_sql", "_name", "_refs", "_order")

    def __init__(self, sql: str, *, name: Optional[str] = None,
                 refs: FrozenSet[str] = frozenset(), order: Optional[str] = None) -> None:
        self._sql = sql
        self._name = name
        self._refs = refs
        self._order = order

    # -- helpers -------------------------------------------------------------

    def _bin(self, op: str, other: Any, *, reverse: bool = False) -> "Column":
        o = _to_col(other)
        left, right = (o, self) if reverse else (self, o)
        return Column(f"({left._sql} {op} {right._sql})", refs=left._refs | right._refs)

    def _sql_text(self, visible: Iterable[str] = ()) -> str:
        return render(self._sql, visible)

    def __repr__(self) -> str:
        return f"Column[{render(self._sql)}]"

    def __bool__(self) -> bool:
        raise TypeError(
            "a Column has no truth value: use & for AND, | for OR and ~ for NOT, "
            "not Python's and/or/not"
        )

    __hash__ = None  # type: ignore[assignment]

    # -- operators -----------------------------------------------------------

    def __eq__(self, other: Any) -> "Column":  # type: ignore[override]
        return self._bin("=", other)

    def __ne__(self, other: Any) -> "Column":  # type: ignore[override]
        return self._bin("<>", other)

    def __lt__(self, other: Any) -> "Column":
        return self._bin("<", other)

    def __le__(self, other: Any) -> "Column":
        return self._bin("<=", other)

    def __gt__(self, other: Any) -> "Column":
        return self._bin(">", other)

    def __ge__(self, other: Any) -> "Column":
        return self._bin(">=", other)

    def __add__(self, other: Any) -> "Column":
        return self._bin("+", other)

    def __radd__(self, other: Any) -> "Column":
        return self._bin("+", other, reverse=True)

    def __sub__(self, other: Any) -> "Column":
        return self._bin("-", other)

    def __rsub__(self, other: Any) -> "Column":
        return self._bin("-", other, reverse=True)

    def __mul__(self, other: Any) -> "Column":
        return self._bin("*", other)

    def __rmul__(self, other: Any) -> "Column":
        return self._bin("*", other, reverse=True)

    def __truediv__(self, other: Any) -> "Column":
        return self._bin("/", other)

    def __rtruediv__(self, other: Any) -> "Column":
        return self._bin("/", other, reverse=True)

    def __mod__(self, other: Any) -> "Column":
        return self._bin("%", other)

    def __rmod__(self, other: Any) -> "Column":
        return self._bin("%", other, reverse=True)

    def __and__(self, other: Any) -> "Column":
        return self._bin("AND", other)

    def __rand__(self, other: Any) -> "Column":
        return self._bin("AND", other, reverse=True)

    def __or__(self, other: Any) -> "Column":
        return self._bin("OR", other)

    def __ror__(self, other: Any) -> "Column":
        return self._bin("OR", other, reverse=True)

    def __invert__(self) -> "Column":
        return Column(f"(NOT {self._sql})", refs=self._refs)

    def __neg__(self) -> "Column":
        return Column(f"(- {self._sql})", refs=self._refs)

    # -- methods -------------------------------------------------------------

    def alias(self, name: str) -> "Column":
        """The same expression under another output name."""
        return Column(self._sql, name=normalize_ident(name), refs=self._refs)

    as_ = alias
    name = alias

    def cast(self, to: Union[str, Any]) -> "Column":
        """``CAST(expr AS to)``; ``to`` is a SQL type name such as ``"bigint"``
        or a :mod:`freshet.snowpark.types` type such as ``LongType()``."""
        type_sql = to if isinstance(to, str) else getattr(to, "sql_name", None)
        if not type_sql or not re.match(r"^[A-Za-z][A-Za-z0-9_ ,()\[\]]*$", type_sql):
            raise ValueError(f"cast(): {to!r} is not a SQL type name such as 'bigint' or 'text', "
                             "nor a freshet.snowpark.types type such as LongType()")
        return Column(f"CAST({self._sql} AS {type_sql})", refs=self._refs)

    astype = cast

    def is_null(self) -> "Column":
        return Column(f"({self._sql} IS NULL)", refs=self._refs)

    isNull = is_null  # noqa: N815

    def is_not_null(self) -> "Column":
        return Column(f"({self._sql} IS NOT NULL)", refs=self._refs)

    isNotNull = is_not_null  # noqa: N815

    def isin(self, *values: Any) -> "Column":
        if len(values) == 1 and isinstance(values[0], (list, tuple, set, frozenset)):
            values = tuple(values[0])
        if not values:
            return Column("FALSE")
        items = [_to_col(v) for v in values]
        refs = self._refs.union(*(i._refs for i in items))
        return Column(f"({self._sql} IN ({', '.join(i._sql for i in items)}))", refs=refs)

    in_ = isin

    def between(self, lower: Any, upper: Any) -> "Column":
        lo, hi = _to_col(lower), _to_col(upper)
        return Column(f"({self._sql} BETWEEN {lo._sql} AND {hi._sql})",
                      refs=self._refs | lo._refs | hi._refs)

    def like(self, pattern: Any) -> "Column":
        return self._bin("LIKE", pattern)

    def ilike(self, pattern: Any) -> "Column":
        return self._bin("ILIKE", pattern)

    def startswith(self, prefix: Any) -> "Column":
        p = _to_col(prefix)
        return Column(f"starts_with({self._sql}, {p._sql})", refs=self._refs | p._refs)

    def substr(self, start: Any, length: Any) -> "Column":
        s, n = _to_col(start), _to_col(length)
        return Column(f"substr({self._sql}, {s._sql}, {n._sql})", refs=self._refs | s._refs | n._refs)

    def _ordered(self, how: str) -> "Column":
        return Column(self._sql, name=self._name, refs=self._refs, order=how)

    def asc(self) -> "Column":
        return self._ordered("ASC")

    def desc(self) -> "Column":
        return self._ordered("DESC")

    def asc_nulls_first(self) -> "Column":
        return self._ordered("ASC NULLS FIRST")

    def asc_nulls_last(self) -> "Column":
        return self._ordered("ASC NULLS LAST")

    def desc_nulls_first(self) -> "Column":
        return self._ordered("DESC NULLS FIRST")

    def desc_nulls_last(self) -> "Column":
        return self._ordered("DESC NULLS LAST")

    def __getitem__(self, field: Union[str, int]) -> "Column":
        """A field of a struct or json value (a model's prediction)."""
        if isinstance(field, int):
            return Column(f"({self._sql} -> {field})", refs=self._refs)
        return Column(f"({self._sql} -> {literal(field)})", name=normalize_ident(field), refs=self._refs)


class CaseExpr(Column):
    """``when(cond, value).when(...).otherwise(value)``."""

    __slots__ = ("_branches", "_else")

    def __init__(self, branches: "list[tuple[Column, Column]]", otherwise: Optional[Column] = None) -> None:
        self._branches = branches
        self._else = otherwise
        parts = " ".join(f"WHEN {c._sql} THEN {v._sql}" for c, v in branches)
        tail = f" ELSE {otherwise._sql}" if otherwise is not None else ""
        refs: FrozenSet[str] = frozenset().union(*(c._refs | v._refs for c, v in branches))
        if otherwise is not None:
            refs = refs | otherwise._refs
        super().__init__(f"(CASE {parts}{tail} END)", refs=refs)

    def when(self, condition: Any, value: Any) -> "CaseExpr":
        if self._else is not None:
            raise ValueError("when() after otherwise()")
        return CaseExpr(self._branches + [(_to_col(condition), _to_col(value))])

    def otherwise(self, value: Any) -> "CaseExpr":
        return CaseExpr(self._branches, _to_col(value))

    else_ = otherwise


def column_ref(name: str, qualifier: Optional[str] = None) -> Column:
    """A reference to a column by name (optionally of one DataFrame)."""
    if name == "*":
        return Column(("\x01" + qualifier + "\x02" if qualifier else "") + "*", name="*")
    q = quote_ident(name)
    prefix = "\x01" + qualifier + "\x02" if qualifier else ""
    stored = normalize_ident(name)
    return Column(prefix + q, name=stored, refs=frozenset([stored]))


def _to_col(value: Any) -> Column:
    if isinstance(value, Column):
        return value
    return Column(literal(value))


def _to_col_or_name(value: Union[str, Column]) -> Column:
    if isinstance(value, Column):
        return value
    if isinstance(value, str):
        return column_ref(value)
    raise TypeError(f"expected a column name or a Column, not {type(value).__name__}")
