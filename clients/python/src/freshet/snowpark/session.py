"""The Session: one psycopg 3 connection to a Freshet server."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import psycopg

from .._kwargs import take_kwargs
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

    def table(self, name: NameLike) -> "DataFrame":
        """A DataFrame over a table, view or dynamic table
        (``"t"``, ``"db.schema.t"`` or ``["db", "schema", "t"]``)."""
        from .dataframe import DataFrame

        return DataFrame._from_table(self, quote_name(name))

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
            name = f"__freshet_df_{uuid.uuid4().hex[:16]}"
            self.write_pandas(data, name, auto_create_table=True)
            return self.table(name)
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

    def write_pandas(self, df: "pandas.DataFrame", table_name: str, **kwargs: Any) -> "DataFrame":
        """Loads a pandas DataFrame into a table with one COPY (never row by
        row) and returns a DataFrame over the table.

        Keywords: ``database``, ``schema``, ``auto_create_table=False`` (create
        the table from the frame's dtypes if it is missing), ``overwrite=False``
        (replace the table's rows; with ``auto_create_table`` the table is
        re-created), ``quote_identifiers=True``, ``chunk_size`` (bytes of CSV per
        write, default 8 MiB), ``table_type`` (only ``""``).
        """
        from . import _pandas

        opts = take_kwargs(
            "write_pandas", kwargs,
            ["database", "schema", "auto_create_table", "overwrite", "quote_identifiers",
             "chunk_size", "table_type", "use_logical_type", "parallel", "compression",
             "on_error", "create_temp_table"],
        )
        if opts.get("table_type", "") not in ("", None):
            raise NotImplementedError("write_pandas(table_type=…): Freshet has only permanent tables")
        if opts.get("create_temp_table"):
            raise NotImplementedError("write_pandas(create_temp_table=True): Freshet has no temporary tables")
        parts = [p for p in (opts.get("database"), opts.get("schema")) if p] + name_parts(table_name)
        target = quote_name(parts)
        _pandas.write_pandas(
            self, df, target,
            auto_create_table=bool(opts.get("auto_create_table", False)),
            overwrite=bool(opts.get("overwrite", False)),
            chunk_size=int(opts.get("chunk_size") or 8 << 20),
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
        if not self._closed:
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


def _inline_params(query: str, params: Sequence[Any]) -> str:
    """Replaces ``%s``/``?``-free ``$n`` placeholders with literals so the
    query can be nested inside other queries."""
    import re

    def sub(m: "re.Match[str]") -> str:
        i = int(m.group(1)) - 1
        if not 0 <= i < len(params):
            raise FreshetClientError(f"sql(): ${i + 1} has no value in params ({len(params)} given)")
        return literal(params[i])

    out = re.sub(r"\$(\d+)", sub, query)
    if out == query and params:
        # psycopg style %s placeholders
        pieces = query.split("%s")
        if len(pieces) - 1 != len(params):
            raise FreshetClientError(
                f"sql(): the query has {len(pieces) - 1} placeholders ($1 or %s) but {len(params)} params"
            )
        out = pieces[0] + "".join(literal(p) + rest for p, rest in zip(params, pieces[1:]))
    return out


__all__ = ["Session"]
