"""Lazy DataFrames: every transformation builds one SQL statement, which
runs on the server when an action (``collect``, ``to_pandas``, …) is called."""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Union

from .._kwargs import suggest_keywords, take_kwargs
from .._sql import NameLike, closest, literal, normalize_ident, quote_ident, quote_name
from ..exceptions import FreshetClientError
from .column import Column, _to_col, _to_col_or_name, column_ref, render
from .row import Row

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    import pyarrow

    from .session import Session

ColumnOrName = Union[Column, str]
_ids = itertools.count(1)

_JOIN_TYPES = {
    "inner": "INNER", "left": "LEFT", "leftouter": "LEFT", "left_outer": "LEFT",
    "right": "RIGHT", "rightouter": "RIGHT", "right_outer": "RIGHT",
    "full": "FULL", "outer": "FULL", "fullouter": "FULL", "full_outer": "FULL",
    "semi": "SEMI", "leftsemi": "SEMI", "left_semi": "SEMI",
    "anti": "ANTI", "leftanti": "ANTI", "left_anti": "ANTI",
    "cross": "CROSS",
}
_LAG = re.compile(r"^\s*(\d+)\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days)\s*$", re.I)


#: create_or_replace_dynamic_table's keywords (for the closest-name hint).
_DT_KEYWORDS = ["warehouse", "lag", "comment", "mode", "refresh_mode", "initialize", "clustering_keys",
                "is_transient", "data_retention_time", "max_data_extension_time", "statement_params",
                "iceberg_config", "copy_grants"]


def _new_alias() -> str:
    return f"__freshet_{next(_ids)}"


class DataFrame:
    """A lazy query. Transformations return new DataFrames; ``queries`` shows
    the SQL; actions run it."""

    def __init__(self, session: "Session", *, from_: str, from_alias: Optional[str],
                 select: str = "*", where: Sequence[str] = (), order: Optional[str] = None,
                 limit: Optional[int] = None, offset: Optional[int] = None,
                 distinct: bool = False, alias: Optional[str] = None,
                 columns: Optional[List[str]] = None, command: Optional[str] = None) -> None:
        self._session = session
        self._command = command
        self._raw: Optional[str] = None
        self._from = from_
        self._from_alias = from_alias
        self._select = select
        self._where = list(where)
        self._order = order
        self._limit = limit
        self._offset = offset
        self._distinct = distinct
        self._alias = alias or _new_alias()
        self._columns_cache = columns

    # -- construction ------------------------------------------------------------

    @classmethod
    def _from_table(cls, session: "Session", table_sql: str) -> "DataFrame":
        alias = _new_alias()
        return cls(session, from_=f'{table_sql} AS "{alias}"', from_alias=alias, alias=alias)

    @classmethod
    def _from_query(cls, session: "Session", query: str) -> "DataFrame":
        alias = _new_alias()
        df = cls(session, from_=f'({query}) AS "{alias}"', from_alias=alias, alias=alias)
        df._raw = query  # run as written (keeps its ORDER BY) until transformed
        return df

    @classmethod
    def _from_command(cls, session: "Session", sql: str) -> "DataFrame":
        return cls(session, from_="", from_alias=None, command=sql)

    def _no_command(self) -> None:
        if self._command is not None:
            raise FreshetClientError(
                "this DataFrame runs a statement that is not a query; it can only be collected")

    def _wrapped(self, **parts: Any) -> "DataFrame":
        """A DataFrame over this one's result (this one's alias names it)."""
        self._no_command()
        if self._select == "*":
            self.columns  # noqa: B018 (names the columns in the inner query)
        return DataFrame(self._session, from_=f'({self._query()}) AS "{self._alias}"',
                         from_alias=self._alias, **parts)

    def _transparent(self) -> bool:
        """Whether WHERE/ORDER BY may be added to this query itself: it selects
        every column of its one FROM relation, unchanged."""
        self._no_command()
        return (self._select == "*" and not self._distinct and self._limit is None
                and self._offset is None and self._alias == self._from_alias)

    def _query(self) -> str:
        if self._command is not None:
            return self._command
        if self._raw is not None:
            return self._raw
        select = self._select
        if select == "*" and self._columns_cache is not None:
            # Name the columns once they are known: INCREMENTAL dynamic tables
            # refuse SELECT *.
            qual = f'"{self._from_alias}".' if self._from_alias else ""
            select = ", ".join(qual + quote_ident(_q(c)) for c in self._columns_cache)
        sql = f"SELECT {'DISTINCT ' if self._distinct else ''}{select} FROM {self._from}"
        if self._where:
            sql += " WHERE " + " AND ".join(self._where)
        if self._order:
            sql += " ORDER BY " + self._order
        if self._limit is not None:
            sql += f" LIMIT {self._limit}"
        if self._offset:
            sql += f" OFFSET {self._offset}"
        return sql

    @property
    def queries(self) -> Dict[str, List[str]]:
        """The SQL this DataFrame runs (Snowpark's shape: ``queries`` and
        ``post_actions``)."""
        return {"queries": [self._query()], "post_actions": []}

    @property
    def session(self) -> "Session":
        return self._session

    # -- schema ------------------------------------------------------------------

    @property
    def columns(self) -> List[str]:
        """The result's column names, as the server names them (asks the
        server once, for zero rows)."""
        self._no_command()
        if self._columns_cache is None:
            self._columns_cache = self._session._columns_of(self._query())
        return list(self._columns_cache)

    def _resolve(self, name: str) -> str:
        """The stored name of column ``name``, or a client-side error naming
        the closest column."""
        cols = self.columns
        stored = normalize_ident(name)
        if stored in cols:
            return stored
        hint = closest(name, cols)
        raise FreshetClientError(
            f"column {name!r} is not in this DataFrame"
            + (f"; did you mean {hint!r}?" if hint else "")
            + f" (columns: {', '.join(cols)})"
        )

    def _check_refs(self, *cols: Column) -> None:
        known = set(self.columns)
        for c in cols:
            for ref in c._refs:
                if ref not in known:
                    self._resolve(ref)

    def col(self, name: str) -> Column:
        """A column of this DataFrame (qualified when used in a join)."""
        if name == "*":
            return column_ref("*", self._alias)
        return column_ref(_q(self._resolve(name)), self._alias)

    def __getitem__(self, item: Union[str, int, Column]) -> Column:
        if isinstance(item, int):
            return self.col(_q(self.columns[item]))
        if isinstance(item, Column):
            return item
        return self.col(item)

    def __getattr__(self, name: str) -> Column:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.col(name)
        except FreshetClientError as e:
            raise AttributeError(str(e)) from None

    def _vis(self) -> List[str]:
        return [self._alias]

    def _item_sql(self, c: Column) -> str:
        sql = render(c._sql, self._vis())
        if c._name is not None and c._name != "*":
            plain = quote_ident(_q(c._name))
            is_ref = sql == plain or (sql.endswith("." + plain) and c._sql.startswith("\x01"))
            if not is_ref:
                sql += f" AS {plain}"
        return sql

    # -- shaping -----------------------------------------------------------------

    def select(self, *cols: Union[ColumnOrName, Sequence[ColumnOrName]]) -> "DataFrame":
        """Columns or expressions by name or :class:`Column`."""
        items = _flatten(cols)
        if not items:
            raise FreshetClientError("select() needs at least one column")
        exprs: List[Column] = []
        for item in items:
            if isinstance(item, str):
                exprs.append(column_ref("*") if item == "*" else column_ref(_q(self._resolve(item))))
            elif isinstance(item, Column):
                exprs.append(item)
            else:
                raise TypeError(f"select() takes column names or Columns, not {type(item).__name__}")
        self._check_refs(*exprs)
        sel = ", ".join(self._item_sql(e) for e in exprs)
        return self._wrapped(select=sel)

    def filter(self, expr: Union[Column, str]) -> "DataFrame":
        """Rows for which ``expr`` is true (a Column, or SQL text)."""
        if isinstance(expr, str):
            cond = Column(f"({expr})")
        elif isinstance(expr, Column):
            cond = expr
        else:
            raise TypeError(f"filter() takes a Column or SQL text, not {type(expr).__name__}")
        self._check_refs(cond)
        if self._transparent():
            return DataFrame(self._session, from_=self._from, from_alias=self._from_alias,
                             where=self._where + [render(cond._sql, self._vis())], order=self._order,
                             alias=self._alias, columns=self._columns_cache)
        return self._wrapped(where=[render(cond._sql, self._vis())], columns=self._columns_cache)

    where = filter

    @suggest_keywords
    def with_column(self, col_name: str, col: Column) -> "DataFrame":
        """Adds a column (or replaces the one with that name)."""
        return self.with_columns([col_name], [col])

    withColumn = with_column  # noqa: N815

    def with_columns(self, col_names: Sequence[str], values: Sequence[Column]) -> "DataFrame":
        if len(col_names) != len(values):
            raise FreshetClientError("with_columns(): as many names as values, please")
        vals = [_to_col(v) for v in values]
        self._check_refs(*vals)
        new = [normalize_ident(n) for n in col_names]
        keep = [c for c in self.columns if c not in new]
        items = [quote_ident(_q(c)) for c in keep]
        items += [f"{render(v._sql, self._vis())} AS {quote_ident(_q(n))}" for n, v in zip(new, vals)]
        return self._wrapped(select=", ".join(items), columns=keep + new)

    @suggest_keywords
    def with_column_renamed(self, existing: ColumnOrName, new: str) -> "DataFrame":
        """Renames one column."""
        old = self._resolve(existing if isinstance(existing, str) else _q(existing._name or ""))
        new_stored = normalize_ident(new)
        items = []
        names = []
        for c in self.columns:
            if c == old:
                items.append(f"{quote_ident(_q(c))} AS {quote_ident(_q(new_stored))}")
                names.append(new_stored)
            else:
                items.append(quote_ident(_q(c)))
                names.append(c)
        return self._wrapped(select=", ".join(items), columns=names)

    withColumnRenamed = with_column_renamed  # noqa: N815
    rename = with_column_renamed

    def drop(self, *cols: Union[ColumnOrName, Sequence[ColumnOrName]]) -> "DataFrame":
        """Every column but these."""
        gone = set()
        for c in _flatten(cols):
            if isinstance(c, Column) and not c._name:
                raise FreshetClientError("drop() takes column names or column references, not expressions")
            gone.add(self._resolve(c if isinstance(c, str) else _q(c._name or "")))
        keep = [c for c in self.columns if c not in gone]
        if not keep:
            raise FreshetClientError("drop() would leave no columns")
        return self._wrapped(select=", ".join(quote_ident(_q(c)) for c in keep), columns=keep)

    def alias(self, name: str) -> "DataFrame":
        """The same rows; ``name`` only labels the query."""
        return self._wrapped()

    # -- combining ---------------------------------------------------------------

    def join(self, right: "DataFrame", on: Any = None, how: Optional[str] = None, *,
             join_type: Optional[str] = None, lsuffix: str = "", rsuffix: str = "",
             **kwargs: Any) -> "DataFrame":
        """Joins with ``right`` on equal names (a name or a list; the names
        appear once in the result), or on a Column condition. ``how`` is
        inner (default), left, right, full, semi, anti or cross."""
        if kwargs:
            take_kwargs("join", kwargs, ["on", "how", "join_type", "lsuffix", "rsuffix"])
        if not isinstance(right, DataFrame):
            raise TypeError(f"join() takes a DataFrame, not {type(right).__name__}")
        if right._session is not self._session:
            raise FreshetClientError("join(): both DataFrames must come from the same Session")
        kind_name = (how or join_type or ("cross" if on is None else "inner")).lower().replace(" ", "")
        kind = _JOIN_TYPES.get(kind_name)
        if kind is None:
            hint = closest(kind_name, _JOIN_TYPES)
            raise FreshetClientError(
                f"join(): unknown join type {how!r}" + (f"; did you mean {hint!r}?" if hint else "")
            )
        if right._alias == self._alias:
            right = right._wrapped()  # a self-join needs two names
        la, ra = self._alias, right._alias
        vis = [la, ra]
        lcols, rcols = self.columns, right.columns
        using: List[str] = []
        cond_sql: Optional[str] = None
        if on is None:
            if kind != "CROSS":
                raise FreshetClientError(f"join(how={how!r}) needs on=")
        elif isinstance(on, Column):
            cond_sql = render(on._sql, vis)
        elif isinstance(on, (list, tuple)) and on and all(isinstance(c, Column) for c in on):
            # Snowpark: a list of Column conditions, all of which must hold
            cond_sql = " AND ".join(render(c._sql, vis) for c in on)
        else:
            on_names = [on] if isinstance(on, str) else list(on)
            if not on_names or not all(isinstance(n, str) for n in on_names):
                raise TypeError("join(on=…) takes a column name, a list of names, a Column condition "
                                "or a list of Column conditions")
            for n in on_names:
                key = self._resolve(n)
                right._resolve(n)
                using.append(key)
            cond_sql = " AND ".join(f'"{la}".{quote_ident(_q(k))} = "{ra}".{quote_ident(_q(k))}'
                                    for k in using)
        for side in (self, right):
            if side._select == "*":
                side.columns  # noqa: B018 (names the columns in the subquery)
        lfrom = f'({self._query()}) AS "{la}"' if not _is_bare_table(self) else self._from
        rfrom = f'({right._query()}) AS "{ra}"' if not _is_bare_table(right) else right._from
        if kind in ("SEMI", "ANTI"):
            neg = "NOT " if kind == "ANTI" else ""
            sql_from = lfrom
            where = [f"{neg}EXISTS (SELECT 1 FROM {rfrom} WHERE {cond_sql})"]
            sel = f'"{la}".*'
            return DataFrame(self._session, from_=sql_from, from_alias=la, select=sel,
                             where=where, columns=lcols)

        items: List[str] = []
        names: List[str] = []
        for k in using:
            lk, rk = f'"{la}".{quote_ident(_q(k))}', f'"{ra}".{quote_ident(_q(k))}'
            expr = {"RIGHT": rk, "FULL": f"COALESCE({lk}, {rk})"}.get(kind, lk)
            items.append(f"{expr} AS {quote_ident(_q(k))}")
            names.append(k)
        lrest = [c for c in lcols if c not in using]
        rrest = [c for c in rcols if c not in using]
        clash = set(lrest) & set(rrest)
        if clash and not (lsuffix or rsuffix):
            raise FreshetClientError(
                f"join(): both sides have column(s) {', '.join(sorted(clash))}; pass lsuffix= or "
                "rsuffix=, rename them first, or join on them"
            )
        for side_alias, rest, suffix in ((la, lrest, lsuffix), (ra, rrest, rsuffix)):
            for c in rest:
                out = c + suffix if c in clash else c
                items.append(f'"{side_alias}".{quote_ident(_q(c))}'
                             + (f" AS {quote_ident(_q(out))}" if out != c else ""))
                names.append(out)
        if len(set(names)) != len(names):
            raise FreshetClientError("join(): the suffixes still leave duplicate column names")
        if kind == "CROSS":
            sql_from = f"{lfrom} CROSS JOIN {rfrom}"
        else:
            sql_from = f"{lfrom} {kind} JOIN {rfrom} ON {cond_sql}"
        return DataFrame(self._session, from_=sql_from, from_alias=None, select=", ".join(items),
                         columns=names)

    @suggest_keywords
    def cross_join(self, right: "DataFrame", *, lsuffix: str = "", rsuffix: str = "") -> "DataFrame":
        return self.join(right, how="cross", lsuffix=lsuffix, rsuffix=rsuffix)

    crossJoin = cross_join  # noqa: N815

    def _set_op(self, other: "DataFrame", op: str) -> "DataFrame":
        self._no_command()
        if not isinstance(other, DataFrame):
            raise TypeError(f"{op.lower()}() takes a DataFrame")
        if len(self.columns) != len(other.columns):
            raise FreshetClientError(
                f"{op.lower()}(): the DataFrames have {len(self.columns)} and {len(other.columns)} columns"
            )
        query = f"({self._query()}) {op} ({other._query()})"
        return DataFrame._from_query(self._session, query)

    def union_all(self, other: "DataFrame") -> "DataFrame":
        """Rows of both (by position), duplicates kept."""
        return self._set_op(other, "UNION ALL")

    unionAll = union_all  # noqa: N815

    def union(self, other: "DataFrame") -> "DataFrame":
        """Distinct rows of both (by position)."""
        return self._set_op(other, "UNION")

    def union_all_by_name(self, other: "DataFrame") -> "DataFrame":
        return self.union_all(other.select(*[_q(other._resolve(_q(c))) for c in self.columns]))

    def union_by_name(self, other: "DataFrame") -> "DataFrame":
        return self.union(other.select(*[_q(other._resolve(_q(c))) for c in self.columns]))

    # -- aggregating and ordering --------------------------------------------------

    def group_by(self, *cols: Union[ColumnOrName, Sequence[ColumnOrName]]) -> "RelationalGroupedDataFrame":
        self._no_command()
        keys = [column_ref(_q(self._resolve(c))) if isinstance(c, str) else c for c in _flatten(cols)]
        self._check_refs(*keys)
        return RelationalGroupedDataFrame(self, keys)

    groupBy = group_by  # noqa: N815

    def agg(self, *exprs: Any) -> "DataFrame":
        return self.group_by().agg(*exprs)

    def distinct(self) -> "DataFrame":
        return self._wrapped(distinct=True, columns=self._columns_cache)

    def drop_duplicates(self, *subset: str) -> "DataFrame":
        if subset:
            raise NotImplementedError("drop_duplicates(subset): not supported; use distinct()")
        return self.distinct()

    dropDuplicates = drop_duplicates  # noqa: N815

    @suggest_keywords
    def sort(self, *cols: Union[ColumnOrName, Sequence[ColumnOrName]],
             ascending: Union[bool, int, Sequence[Union[bool, int]], None] = None) -> "DataFrame":
        """Orders by columns; ``ascending`` (one flag or one per column)
        overrides ``asc()``/``desc()``."""
        self._no_command()
        items = _flatten(cols)
        if not items:
            raise FreshetClientError("sort() needs at least one column")
        exprs = [column_ref(_q(self._resolve(c))) if isinstance(c, str) else c for c in items]
        self._check_refs(*exprs)
        if ascending is not None:
            flags = list(ascending) if isinstance(ascending, (list, tuple)) else [ascending] * len(exprs)
            if len(flags) != len(exprs):
                raise FreshetClientError("sort(): ascending needs one flag per column")
            exprs = [e.asc() if f else e.desc() for e, f in zip(exprs, flags)]
        if self._limit is None and self._offset is None:
            # ORDER BY in this query: this DataFrame's own columns are its
            # output names, visible unqualified.
            vis = [self._alias] if self._alias == self._from_alias else []
            order = ", ".join(render(e._sql, vis) + (f" {e._order}" if e._order else "") for e in exprs)
            return DataFrame(self._session, from_=self._from, from_alias=self._from_alias,
                             select=self._select, where=self._where, order=order,
                             distinct=self._distinct, alias=self._alias, columns=self._columns_cache)
        order = ", ".join(render(e._sql, self._vis()) + (f" {e._order}" if e._order else "") for e in exprs)
        return self._wrapped(order=order, columns=self._columns_cache)

    order_by = sort
    orderBy = sort  # noqa: N815

    @suggest_keywords
    def limit(self, n: int, offset: int = 0) -> "DataFrame":
        self._no_command()
        if not isinstance(n, int) or n < 0 or not isinstance(offset, int) or offset < 0:
            raise FreshetClientError("limit() takes non-negative integers")
        if self._limit is None and self._offset is None:
            return DataFrame(self._session, from_=self._from, from_alias=self._from_alias,
                             select=self._select, where=self._where, order=self._order,
                             limit=n, offset=offset or None, distinct=self._distinct,
                             alias=self._alias, columns=self._columns_cache)
        return self._wrapped(limit=n, offset=offset or None, columns=self._columns_cache)

    # -- results -------------------------------------------------------------------

    def collect(self) -> List[Row]:
        """Runs the query; every row as a :class:`Row`."""
        cur = self._session._execute(self._query())
        if cur.description is None:
            return [Row([cur.statusmessage], ["status"])]
        names = [d.name for d in cur.description]
        return [Row(r, names) for r in cur.fetchall()]

    def to_local_iterator(self) -> Any:
        cur = self._session._execute(self._query())
        names = [d.name for d in cur.description or []]
        for r in cur:
            yield Row(r, names)

    @suggest_keywords
    def first(self, n: Optional[int] = None) -> Any:
        """The first row (``None`` if there is none), or a list of the first ``n``."""
        rows = self.limit(1 if n is None else n).collect()
        if n is None:
            return rows[0] if rows else None
        return rows

    @suggest_keywords
    def take(self, n: Optional[int] = None) -> Any:
        return self.first(n)

    def count(self) -> int:
        """The number of rows (counted by the server)."""
        self._no_command()
        return int(self._session._fetch(f'SELECT count(*) FROM ({self._query()}) AS "{self._alias}"')[0][0])

    def to_pandas(self) -> "pandas.DataFrame":
        """The result as a pandas DataFrame."""
        from . import _pandas

        return _pandas.query_to_pandas(self._session, self._query())

    toPandas = to_pandas  # noqa: N815

    def to_arrow(self) -> "pyarrow.Table":
        """The result as a pyarrow Table."""
        from . import _pandas

        return _pandas.query_to_arrow(self._session, self._query())

    @suggest_keywords
    def show(self, n: int = 10, max_width: int = 50) -> None:
        """Prints the first ``n`` rows as a table."""
        cur = self._session._execute(self.limit(n)._query())
        names = [d.name for d in cur.description or []]
        data = [["NULL" if v is None else str(v) for v in r] for r in cur.fetchall()]
        widths = [min(max_width, max([len(h)] + [len(r[i]) for r in data])) for i, h in enumerate(names)]

        def line(vals: Sequence[str]) -> str:
            return "|" + "|".join(v[:w].ljust(w) for v, w in zip(vals, widths)) + "|"

        bar = "-" * (sum(widths) + len(widths) + 1)
        print(bar)
        print(line(names))
        print(bar)
        for r in data:
            print(line(r))
        print(bar)

    def explain(self) -> None:
        """Prints the query and the server's plan for it."""
        print(self.explain_string())

    def explain_string(self) -> str:
        rows = self._session._fetch(f"EXPLAIN {self._query()}")
        plan = "\n".join(" | ".join("" if v is None else str(v) for v in r) for r in rows)
        return f"---------\nQuery:\n{self._query()}\n---------\nPlan:\n{plan}\n---------"

    # -- saving --------------------------------------------------------------------

    def create_or_replace_dynamic_table(
        self, name: NameLike, *, warehouse: Optional[str] = None, lag: Optional[str] = None,
        comment: Optional[str] = None, mode: str = "overwrite", refresh_mode: Optional[str] = None,
        initialize: Optional[str] = None, clustering_keys: Optional[Sequence[ColumnOrName]] = None,
        is_transient: bool = False, data_retention_time: Optional[int] = None,
        max_data_extension_time: Optional[int] = None, statement_params: Optional[Dict[str, str]] = None,
        iceberg_config: Optional[Dict[str, Any]] = None, copy_grants: bool = False, **kwargs: Any,
    ) -> List[Row]:
        """``CREATE [OR REPLACE] DYNAMIC TABLE name … AS <this query>``.

        ``warehouse`` and ``lag`` are required (Snowpark's signature); lag is
        ``'<n> seconds | minutes | hours | days'`` or ``'DOWNSTREAM'``.
        ``refresh_mode``: AUTO, FULL or INCREMENTAL; ``initialize``: ON_CREATE
        or ON_SCHEDULE; ``mode``: overwrite (default), errorifexists or
        ignore. ``initiliaze=`` (the published example's spelling) is taken as
        ``initialize=`` with a warning. Returns the server's status row.
        """
        extra = take_kwargs("create_or_replace_dynamic_table", kwargs, _DT_KEYWORDS)
        if "initialize" in extra:
            if initialize is not None:
                raise TypeError("create_or_replace_dynamic_table() got 'initialize' twice (once as 'initiliaze')")
            initialize = extra["initialize"]
        opts: Dict[str, Any] = {"warehouse": warehouse, "lag": lag}
        for missing in ("warehouse", "lag"):
            if opts.get(missing) is None:
                raise TypeError(f"create_or_replace_dynamic_table() missing required keyword argument: '{missing}'")
        unsupported = {"clustering_keys": clustering_keys, "data_retention_time": data_retention_time,
                       "max_data_extension_time": max_data_extension_time, "iceberg_config": iceberg_config,
                       "is_transient": is_transient or None, "copy_grants": copy_grants or None}
        for key, value in unsupported.items():
            if value is not None:
                raise NotImplementedError(
                    f"create_or_replace_dynamic_table({key}=…): Freshet has no such option; leave it out")
        opts.update(refresh_mode=refresh_mode, initialize=initialize, comment=comment, mode=mode)
        lag = str(opts["lag"])
        if lag.strip().upper() == "DOWNSTREAM":
            lag_sql = "DOWNSTREAM"
        elif _LAG.match(lag):
            lag_sql = literal(lag.strip())
        else:
            raise FreshetClientError(
                f"lag={lag!r} is not a target lag: write '<n> seconds', '<n> minutes', "
                "'<n> hours', '<n> days' or 'DOWNSTREAM'"
            )
        wh = str(opts["warehouse"])
        clauses = [f"TARGET_LAG = {lag_sql}", f"WAREHOUSE = {quote_ident(wh)}"]
        rm = opts.get("refresh_mode")
        if rm is not None:
            rm_u = str(rm).upper()
            if rm_u not in ("AUTO", "FULL", "INCREMENTAL"):
                raise FreshetClientError(f"refresh_mode={rm!r}: use 'AUTO', 'FULL' or 'INCREMENTAL'")
            clauses.append(f"REFRESH_MODE = {rm_u}")
        init = opts.get("initialize")
        if init is not None:
            init_u = str(init).upper()
            if init_u not in ("ON_CREATE", "ON_SCHEDULE"):
                raise FreshetClientError(f"initialize={init!r}: use 'ON_CREATE' or 'ON_SCHEDULE'")
            clauses.append(f"INITIALIZE = {init_u}")
        if opts.get("comment") is not None:
            clauses.append(f"COMMENT = {literal(str(opts['comment']))}")
        head = _create_head("create_or_replace_dynamic_table", opts.get("mode", "overwrite"), "DYNAMIC TABLE")
        if self._select == "*":
            self.columns  # noqa: B018 (INCREMENTAL refuses SELECT *: name them)
        sql = f"{head} {quote_name(name)} {' '.join(clauses)} AS {self._query()}"
        return self._run_ddl(sql)

    @suggest_keywords
    def create_or_replace_view(self, name: NameLike, *, comment: Optional[str] = None,
                               **kwargs: Any) -> List[Row]:
        """``CREATE OR REPLACE VIEW name AS <this query>``."""
        take_kwargs("create_or_replace_view", kwargs, ["statement_params", "copy_grants"])
        if self._select == "*":
            self.columns  # noqa: B018
        sql = f"CREATE OR REPLACE VIEW {quote_name(name)} AS {self._query()}"
        if comment is not None:
            raise NotImplementedError("create_or_replace_view(comment=…): Freshet views have no comments")
        return self._run_ddl(sql)

    createOrReplaceView = create_or_replace_view  # noqa: N815

    def _run_ddl(self, sql: str) -> List[Row]:
        cur = self._session._execute(sql)
        status = cur.statusmessage or ""
        return [Row([status], ["status"])]

    @property
    def write(self) -> "DataFrameWriter":
        return DataFrameWriter(self)

    def save_as_table(self, table_name: NameLike, *, mode: str = "errorifexists", **kwargs: Any) -> None:
        self.write.save_as_table(table_name, mode=mode, **kwargs)

    def __repr__(self) -> str:
        return f"<freshet DataFrame: {self._query()}>"

    def __iter__(self) -> Any:
        raise TypeError("a DataFrame is not iterable: call collect() or to_local_iterator()")


class RelationalGroupedDataFrame:
    """``df.group_by(...)``: aggregate with ``agg`` (or ``count``, ``sum``, …)."""

    def __init__(self, df: DataFrame, keys: List[Column]) -> None:
        self._df = df
        self._keys = keys

    def agg(self, *exprs: Any) -> DataFrame:
        """Aggregates: Columns (``sum(col("x")).alias("s")``), ``(name, "sum")``
        pairs, or a dict ``{name: "sum"}``."""
        items: List[Column] = []
        flat: List[Any] = []
        for e in exprs:
            if isinstance(e, dict):
                flat.extend(e.items())
            elif isinstance(e, list):
                flat.extend(e)
            else:
                flat.append(e)
        from . import functions as F

        for e in flat:
            if isinstance(e, Column):
                items.append(e)
            elif isinstance(e, tuple) and len(e) == 2:
                name, fn = e
                fn_l = str(fn).lower()
                fns: Dict[str, Any] = {"sum": F.sum, "count": F.count, "avg": F.avg, "mean": F.avg, "min": F.min,
                       "max": F.max, "count_distinct": F.count_distinct}
                if fn_l not in fns:
                    raise FreshetClientError(f"agg(): unknown aggregate {fn!r}; use one of {', '.join(fns)}")
                target = "*" if name == "*" else self._df._resolve(name)
                items.append(fns[fn_l](target if target == "*" else column_ref(_q(target))))
            else:
                raise TypeError(f"agg() takes Columns, (name, function) pairs or a dict, not {e!r}")
        if not items and not self._keys:
            raise FreshetClientError("agg() needs at least one aggregate")
        self._df._check_refs(*items)
        df = self._df
        sel = [df._item_sql(k) for k in self._keys] + [df._item_sql(i) for i in items]
        group = ", ".join(render(k._sql, df._vis()) for k in self._keys)
        from_ = (f'({df._query()}) AS "{df._alias}"')
        if group:
            query = f"SELECT {', '.join(sel)} FROM {from_} GROUP BY {group}"
        else:
            query = f"SELECT {', '.join(sel)} FROM {from_}"
        return DataFrame._from_query(df._session, query)

    def count(self) -> DataFrame:
        from . import functions as F

        return self.agg(F.count("*").alias("count"))

    def _each(self, fn: str, cols: Sequence[str]) -> DataFrame:
        from . import functions as F

        f = getattr(F, fn)
        return self.agg(*[f(column_ref(_q(self._df._resolve(c)))) for c in cols])

    def sum(self, *cols: str) -> DataFrame:
        return self._each("sum", cols)

    def avg(self, *cols: str) -> DataFrame:
        return self._each("avg", cols)

    mean = avg

    def min(self, *cols: str) -> DataFrame:
        return self._each("min", cols)

    def max(self, *cols: str) -> DataFrame:
        return self._each("max", cols)


class DataFrameWriter:
    """``df.write``: ``mode(…)`` then ``save_as_table(…)``."""

    def __init__(self, df: DataFrame) -> None:
        self._df = df
        self._mode = "errorifexists"

    def mode(self, save_mode: str) -> "DataFrameWriter":
        self._mode = save_mode
        return self

    def save_as_table(self, table_name: NameLike, *, mode: Optional[str] = None,
                      column_order: str = "index", create_temp_table: bool = False, table_type: str = "",
                      statement_params: Optional[Dict[str, str]] = None, block: bool = True,
                      **kwargs: Any) -> None:
        """Writes the rows to a table (Snowpark's modes): ``errorifexists``
        (create; the default), ``overwrite`` (create or replace), ``append``
        (insert into the table, creating it if missing), ``ignore`` (create if
        missing, else nothing), ``truncate`` (empty the existing table and
        insert, keeping its column types; create it if missing).
        ``column_order="name"`` inserts by column name instead of position
        (``append`` and ``truncate``)."""
        take_kwargs("save_as_table", kwargs, ["mode", "column_order", "create_temp_table", "table_type",
                                              "statement_params", "block", "clustering_keys", "comment"])
        for key in ("clustering_keys", "comment"):
            if kwargs.get(key) is not None:
                raise NotImplementedError(f"save_as_table({key}=…): not supported by Freshet; leave it out")
        if create_temp_table or table_type not in ("", None):
            raise NotImplementedError("save_as_table(): Freshet has only permanent tables (table_type='')")
        if not block:
            raise NotImplementedError("save_as_table(block=False): Freshet runs it synchronously")
        m = (mode or self._mode).lower()
        if m not in ("append", "truncate", "overwrite", "errorifexists", "error", "ignore"):
            hint = closest(m, ["append", "truncate", "overwrite", "errorifexists", "ignore"])
            raise FreshetClientError(
                f"save_as_table(mode={m!r}): use 'errorifexists', 'overwrite', 'append', 'ignore' or 'truncate'"
                + (f" (did you mean {hint!r}?)" if hint else ""))
        order = str(column_order).lower()
        if order not in ("index", "name"):
            raise FreshetClientError(f"save_as_table(column_order={column_order!r}): use 'index' or 'name'")
        df = self._df
        session = df._session
        target = quote_name(table_name)
        q = df._query()
        if m in ("append", "truncate"):
            if not _exists(session, target):
                session._execute(f"CREATE TABLE {target} AS {q}")
                return
            cols = ""
            if order == "name":
                cols = " (" + ", ".join(quote_ident(_q(c)) for c in df.columns) + ")"
            insert = f"INSERT INTO {target}{cols} {q}"
            if m == "append":
                session._execute(insert)
                return
            with session.connection.transaction():
                session._execute(f"TRUNCATE {target}")
                session._execute(insert)
            return
        head = _create_head("save_as_table", m, "TABLE")
        session._execute(f"{head} {target} AS {q}")

    saveAsTable = save_as_table  # noqa: N815


def _create_head(func: str, mode: str, kind: str) -> str:
    m = str(mode).lower()
    if m == "overwrite":
        return f"CREATE OR REPLACE {kind}"
    if m in ("errorifexists", "error"):
        return f"CREATE {kind}"
    if m == "ignore":
        return f"CREATE {kind} IF NOT EXISTS"
    hint = closest(m, ["overwrite", "errorifexists", "ignore"])
    raise FreshetClientError(
        f"{func}(mode={mode!r}): use 'overwrite', 'errorifexists' or 'ignore'"
        + (f" (did you mean {hint!r}?)" if hint else "")
    )


def _exists(session: "Session", target: str) -> bool:
    """Whether the relation ``target`` exists (a zero-row read: 42P01 if not)."""
    from ..exceptions import FreshetSQLException

    try:
        session._execute(f"SELECT 1 FROM {target} LIMIT 0")
    except FreshetSQLException as e:
        if e.sqlstate in ("42P01", "3F000"):
            return False
        raise
    return True


def _flatten(cols: Sequence[Any]) -> List[Any]:
    out: List[Any] = []
    for c in cols:
        if isinstance(c, (list, tuple)):
            out.extend(c)
        else:
            out.append(c)
    return out


def _q(stored: str) -> str:
    """A stored column name written so quote_ident keeps it exactly."""
    return '"' + stored.replace('"', '""') + '"'


def _is_bare_table(df: DataFrame) -> bool:
    return (df._select == "*" and not df._where and df._order is None and df._limit is None
            and df._offset is None and not df._distinct and df._alias == df._from_alias
            and not df._from.startswith("("))

