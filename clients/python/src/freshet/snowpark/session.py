"""The Session: one psycopg 3 connection to a Freshet server."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import psycopg

from .._kwargs import suggest_keywords, take_kwargs
from .._sql import NameLike, literal, name_parts, normalize_ident, quote_ident, quote_name
from ..exceptions import FreshetClientError, FreshetSQLException

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from .dataframe import DataFrame

#: configs() keys that name libpq connection parameters.
_LIBPQ_KEYS = {
    "host", "hostaddr", "port", "user", "password", "dbname", "database",
    "sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout",
    "application_name", "options", "passfile", "target_session_attrs",
}
#: keys Snowflake connection dicts carry that mean nothing to Freshet.
_IGNORED_KEYS = {"account", "warehouse", "role", "authenticator", "region"}
_DSN_KEYS = {"connection_string", "dsn", "url", "uri", "conninfo"}


class _SessionBuilder:
    """``Session.builder``: collects connection options, then ``create()``."""

    def __init__(self) -> None:
        self._options: Dict[str, Any] = {}

    def config(self, key: str, value: Any) -> "_SessionBuilder":
        self._options[key] = value
        return self

    def configs(self, options: Dict[str, Any]) -> "_SessionBuilder":
        if not isinstance(options, dict):
            raise TypeError("configs() takes a dict of connection options")
        self._options.update(options)
        return self

    def create(self) -> "Session":
        options = dict(self._options)
        self._options = {}
        return Session._connect(options)

    def getOrCreate(self) -> "Session":  # noqa: N802 (Snowpark's name)
        return self.create()


class _BuilderDescriptor:
    def __get__(self, obj: Any, owner: Any) -> _SessionBuilder:
        return _SessionBuilder()


class Session:
    """A connection to a Freshet server, the entry point of the DataFrame API.

    Create one with ``Session.builder.configs({...}).create()``. Options are
    libpq's (``host``, ``port``, ``user``, ``password``, ``database``/``dbname``,
    ``sslmode``, …), plus ``connection_string`` (a libpq string or a
    ``postgresql://`` URL) and ``schema``. Unset options come from the
    standard ``PG*`` environment variables, as in libpq.
    """

    builder = _BuilderDescriptor()

    def __init__(self, conn: "psycopg.Connection[Any]", *, schema: Optional[str] = None) -> None:
        self._conn = conn
        self._closed = False
        # tables create_dataframe(pandas) loaded, dropped by close() (Snowpark
        # uses temporary tables, which Freshet does not have)
        self._scratch: List[str] = []
        if schema:
            self.use_schema(schema)

    @classmethod
    def _connect(cls, options: Dict[str, Any]) -> "Session":
        dsn = ""
        kwargs: Dict[str, Any] = {}
        schema = None
        for key, value in options.items():
            k = key.lower()
            if k in _DSN_KEYS:
                dsn = str(value)
            elif k == "database":
                kwargs["dbname"] = value
            elif k == "schema":
                schema = value
            elif k in _LIBPQ_KEYS:
                kwargs[k] = value
            elif k in _IGNORED_KEYS:
                continue
            else:
                from .._sql import closest

                hint = closest(k, sorted(_LIBPQ_KEYS | _DSN_KEYS | {"schema"}))
                raise TypeError(
                    f"unknown connection option '{key}'"
                    + (f"; did you mean '{hint}'?" if hint else "")
                )
        if "dbname" in kwargs:
            kwargs["dbname"] = normalize_ident(str(kwargs["dbname"]))
        try:
            conn = psycopg.connect(dsn, autocommit=True, **kwargs)
        except psycopg.Error as e:
            raise _wrap(e, None) from e
        return cls(conn, schema=schema)

    # -- plumbing --------------------------------------------------------------

    @property
    def connection(self) -> "psycopg.Connection[Any]":
        """The underlying psycopg connection."""
        self._check_open()
        return self._conn

    def _check_open(self) -> None:
        if self._closed:
            raise FreshetClientError("this Session is closed")

    def _execute(self, query: str, params: Optional[Sequence[Any]] = None,
                 *, binary: bool = False) -> "psycopg.Cursor[Any]":
        """Runs one statement and returns its cursor (server errors become
        :class:`FreshetSQLException`)."""
        self._check_open()
        cur = self._conn.cursor(binary=binary)
        try:
            if params is None:
                cur.execute(query, prepare=False)
            else:
                cur.execute(query, params, prepare=False)
        except psycopg.Error as e:
            raise _wrap(e, query) from e
        return cur

    def _fetch(self, query: str, params: Optional[Sequence[Any]] = None) -> List[tuple]:
        cur = self._execute(query, params)
        return cur.fetchall() if cur.description is not None else []

    def _columns_of(self, query: str) -> List[str]:
        """The result column names of a SELECT, without running it over data."""
        cur = self._execute(f"SELECT * FROM ({query}) AS __freshet_describe LIMIT 0")
        return [d.name for d in (cur.description or [])]

    # -- SQL and tables ---------------------------------------------------------

    @suggest_keywords
    def sql(self, query: str, params: Optional[Sequence[Any]] = None) -> "DataFrame":
        """A DataFrame for a query. A SELECT stays lazy (it runs when an action
        such as ``collect()`` is called); any other statement runs when the
        DataFrame is collected, as in Snowpark."""
        from .dataframe import DataFrame

        if not isinstance(query, str):
            raise TypeError("sql() takes the query as a string")
        if params is not None:
            if not isinstance(params, (list, tuple)):
                raise TypeError("sql() takes params as a list or tuple")
            query = _inline_params(query, params)
        if not _is_query(query):
            return DataFrame._from_command(self, query)
        return DataFrame._from_query(self, query.strip().rstrip(";"))

    @suggest_keywords
    def table(self, name: NameLike) -> "DataFrame":
        """A DataFrame over a table, view or dynamic table
        (``"t"``, ``"db.schema.t"`` or ``["db", "schema", "t"]``)."""
        from .dataframe import DataFrame

        return DataFrame._from_table(self, quote_name(name))

    @suggest_keywords
    def create_dataframe(self, data: Any, schema: Optional[Sequence[str]] = None) -> "DataFrame":
        """A DataFrame over literal rows (a list of tuples, dicts or values),
        or over a pandas DataFrame (loaded into a scratch table with COPY)."""
        from .dataframe import DataFrame

        try:
            import pandas as pd
        except ImportError:  # pragma: no cover
            pd = None
        if pd is not None and isinstance(data, pd.DataFrame):
            if schema is not None:
                data = data.set_axis(list(schema), axis=1)
            parts = [self.get_current_database() or "", self.get_current_schema() or "public",
                     f"__freshet_df_{uuid.uuid4().hex[:16]}"]
            full = ['"' + p.replace('"', '""') + '"' for p in parts]  # exact stored names
            df = self.write_pandas(data, full, auto_create_table=True)
            self._scratch.append(quote_name(full))
            return df
        rows = list(data)
        if not rows:
            raise FreshetClientError("create_dataframe() needs at least one row (or a pandas DataFrame)")
        first = rows[0]
        if isinstance(first, dict):
            names = list(schema) if schema is not None else list(first.keys())
            rows = [tuple(r.get(k) for k in (first.keys() if schema is None else names)) for r in rows]
        else:
            if not isinstance(first, (tuple, list)):
                rows = [(r,) for r in rows]
            width = len(rows[0])
            if schema is None:
                names = list(getattr(first, "_fields", None) or [f"_{i + 1}" for i in range(width)])
            else:
                names = list(schema)
        if any(len(r) != len(names) for r in rows):
            raise FreshetClientError(
                f"create_dataframe(): every row must have {len(names)} values ({', '.join(names)})"
            )
        values = ", ".join("(" + ", ".join(literal(v) for v in r) + ")" for r in rows)
        cols = ", ".join(quote_ident(n) for n in names)
        query = f"SELECT * FROM (VALUES {values}) AS __freshet_values ({cols})"
        return DataFrame._from_query(self, query)

    createDataFrame = create_dataframe  # noqa: N815 (Snowpark's alias)

    def write_pandas(
        self, df: "pandas.DataFrame", table_name: NameLike, *, database: Optional[str] = None,
        schema: Optional[str] = None, chunk_size: Optional[int] = None, compression: str = "gzip",
        on_error: str = "abort_statement", parallel: int = 4, quote_identifiers: bool = True,
        auto_create_table: bool = False, create_temp_table: bool = False, overwrite: bool = False,
        table_type: str = "", use_logical_type: Optional[bool] = None, **kwargs: Any,
    ) -> "DataFrame":
        """Loads a pandas DataFrame into a table with one ``COPY … FROM STDIN``
        (never row by row) and returns a DataFrame over the table.

        ``auto_create_table`` creates the table from the frame's dtypes if it
        is missing; ``overwrite`` replaces the table's rows (with
        ``auto_create_table``, the table is re-created from the frame). Frame
        columns are matched to table columns by name. ``chunk_size`` is rows
        per CSV piece written into the COPY (default 200,000). ``database``
        needs ``schema`` too. ``compression``, ``on_error``, ``parallel``,
        ``quote_identifiers`` and ``use_logical_type`` are Snowflake's
        staging options and change nothing here (names follow SQL's rules,
        see :func:`freshet._sql.quote_ident`).
        """
        from . import _pandas

        take_kwargs("write_pandas", kwargs,
                    ["database", "schema", "chunk_size", "compression", "on_error", "parallel",
                     "quote_identifiers", "auto_create_table", "create_temp_table", "overwrite",
                     "table_type", "use_logical_type"])
        if table_type not in ("", None):
            raise NotImplementedError("write_pandas(table_type=…): Freshet has only permanent tables; leave it out")
        if create_temp_table:
            raise NotImplementedError("write_pandas(create_temp_table=True): Freshet has no temporary tables")
        if database and not schema:
            raise FreshetClientError("write_pandas(): pass schema= together with database=")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise FreshetClientError("write_pandas(chunk_size=…): a positive number of rows")
        parts = [p for p in (database, schema) if p] + name_parts(table_name)
        target = quote_name(parts)
        _pandas.write_pandas(
            self, df, target,
            auto_create_table=bool(auto_create_table),
            overwrite=bool(overwrite),
            chunk_rows=chunk_size or 200_000,
        )
        return self.table(parts)

    # -- namespaces -------------------------------------------------------------

    def use_database(self, database: str) -> None:
        self._execute(f"USE DATABASE {quote_ident(database)}")

    def use_schema(self, schema: str) -> None:
        self._execute(f"USE SCHEMA {quote_name(schema)}")

    def get_current_database(self) -> Optional[str]:
        return self._fetch("SELECT current_database()")[0][0]

    def get_current_schema(self) -> Optional[str]:
        # The first schema of search_path (USE SCHEMA sets it; the server's
        # current_schema() does not follow it).
        path = self._fetch("SHOW search_path")[0][0] or ""
        first = path.split(",")[0].strip()
        return first.strip('"') if first else None

    def get_fully_qualified_current_schema(self) -> str:
        return f"{quote_ident(self.get_current_database() or '')}.{quote_ident(self.get_current_schema() or '')}"

    # -- lifetime -----------------------------------------------------------------

    def close(self) -> None:
        """Drops the tables ``create_dataframe(pandas_frame)`` made, then
        closes the connection."""
        if not self._closed:
            for table in self._scratch:
                try:
                    self._execute(f"DROP TABLE IF EXISTS {table}")
                except FreshetSQLException:
                    pass  # e.g. a dynamic table still reads it: leave it
            self._scratch = []
            self._closed = True
            self._conn.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return "<freshet Session (closed)>"
        info = self._conn.info
        return f"<freshet Session {info.user}@{info.host}:{info.port}/{info.dbname}>"


def _wrap(e: "psycopg.Error", query: Optional[str]) -> FreshetSQLException:
    diag = getattr(e, "diag", None)
    sqlstate = getattr(e, "sqlstate", None) or (diag.sqlstate if diag else None)
    message = (diag.message_primary if diag and diag.message_primary else None) or str(e).strip()
    return FreshetSQLException(
        message,
        sqlstate=sqlstate,
        query=query,
        detail=diag.message_detail if diag else None,
        hint=diag.message_hint if diag else None,
    )


def _is_query(sql: str) -> bool:
    """Whether ``sql`` is a SELECT-like query (one that can be nested)."""
    import re

    text = re.sub(r"^(\s+|--[^\n]*\n|/\*.*?\*/)+", "", sql, flags=re.S)
    return bool(re.match(r"(?i)(select|with|values|table)\b|\(", text))


def _placeholders(query: str) -> List[tuple]:
    """``(start, end, kind, number)`` of each ``$n``, ``?`` and ``%s``
    placeholder outside string literals, quoted names and comments."""
    out: List[tuple] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c in "'\"":
            j = i + 1
            while j < n:
                if query[j] == c:
                    if j + 1 < n and query[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif query.startswith("--", i):
            j = query.find("\n", i)
            i = n if j < 0 else j + 1
        elif query.startswith("/*", i):
            j = query.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "$" and i + 1 < n and query[i + 1].isdigit() and (i == 0 or not (query[i - 1].isalnum() or query[i - 1] in "_$")):
            j = i + 1
            while j < n and query[j].isdigit():
                j += 1
            out.append((i, j, "$", int(query[i + 1:j])))
            i = j
        elif c == "?":
            out.append((i, i + 1, "?", 0))
            i += 1
        elif c == "%" and query.startswith("%s", i):
            out.append((i, i + 2, "%", 0))
            i += 2
        elif c == "%" and query.startswith("%%", i):
            i += 2
        else:
            i += 1
    return out


def _inline_params(query: str, params: Sequence[Any]) -> str:
    """The query with its placeholders replaced by SQL literals, so that it
    can be nested inside other queries: ``$1``, ``$2`` … (PostgreSQL's), ``?``
    (Snowpark's qmark style) or ``%s`` (psycopg's; write ``%%`` for ``%``).
    Placeholders inside string literals, quoted names and comments are text."""
    found = _placeholders(query)
    kinds = {k for _, _, k, _ in found}
    if len(kinds) > 1:
        raise FreshetClientError("sql(): use one placeholder style ($1, ? or %s), not several")
    kind = kinds.pop() if kinds else None
    if kind is None:
        if params:
            raise FreshetClientError(
                f"sql(): {len(params)} params but the query has no placeholder ($1, ? or %s)")
        return query
    if kind == "$":
        for _, _, _, num in found:
            if not 1 <= num <= len(params):
                raise FreshetClientError(f"sql(): ${num} has no value in params ({len(params)} given)")
    elif len(found) != len(params):
        raise FreshetClientError(
            f"sql(): the query has {len(found)} {kind if kind == '?' else '%s'} placeholders but "
            f"{len(params)} params")
    def text(piece: str) -> str:
        return piece.replace("%%", "%") if kind == "%" else piece

    out = []
    last = 0
    for idx, (start, end, _, num) in enumerate(found):
        out.append(text(query[last:start]))
        out.append(literal(params[num - 1] if kind == "$" else params[idx]))
        last = end
    out.append(text(query[last:]))
    return "".join(out)


__all__ = ["Session"]
