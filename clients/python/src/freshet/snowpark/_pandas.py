"""pandas and Arrow transfer: COPY in for write_pandas, result sets out for
to_pandas / to_arrow."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, List

from .._sql import quote_ident
from ..exceptions import FreshetClientError

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    import pyarrow

    from .session import Session


#: SQL types for what pandas infers an object column holds.
_INFERRED = {
    "string": "text", "empty": "text", "boolean": "boolean", "integer": "bigint", "floating": "double precision",
    "mixed-integer-float": "double precision", "decimal": "numeric", "date": "date", "datetime": "timestamp",
    "datetime64": "timestamp",
}


def _sql_type(series: Any) -> str:
    import pandas as pd
    from pandas.api import types as t

    dtype = series.dtype
    if t.is_object_dtype(dtype):
        kind = _INFERRED.get(pd.api.types.infer_dtype(series, skipna=True))
        if kind == "timestamp" and any(getattr(v, "tzinfo", None) is not None for v in series.dropna()):
            kind = "timestamptz"
        if kind is not None:
            return kind

    if isinstance(dtype, pd.DatetimeTZDtype):
        return "timestamptz"
    if t.is_bool_dtype(dtype):
        return "boolean"
    if t.is_integer_dtype(dtype):
        size = getattr(dtype, "itemsize", 8)
        return {1: "smallint", 2: "smallint", 4: "integer"}.get(size, "bigint")
    if t.is_float_dtype(dtype):
        return "real" if getattr(dtype, "itemsize", 8) == 4 else "double precision"
    if t.is_datetime64_any_dtype(dtype):
        return "timestamp"
    if t.is_string_dtype(dtype) or t.is_object_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return "text"
    raise FreshetClientError(
        f"write_pandas(auto_create_table=True): no SQL type for pandas dtype {dtype}; "
        "create the table first or convert the column"
    )


def _csv_chunks(df: "pandas.DataFrame", chunk_rows: int) -> Any:
    """The frame as CSV (no header) in pieces: NULL is an unquoted empty
    field and every string is quoted, so an empty string stays one."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:  # pragma: no cover - pandas fallback
        buf = io.StringIO()
        df.to_csv(buf, header=False, index=False, na_rep="", quoting=2, date_format="%Y-%m-%d %H:%M:%S.%f")
        yield buf.getvalue().encode("utf-8")
        return
    import pandas as pd

    fixed = {}
    for name in df.columns:
        s = df[name]
        if isinstance(s.dtype, pd.CategoricalDtype):
            fixed[name] = s.astype(object)
    if fixed:
        df = df.assign(**fixed)
    table = pa.Table.from_pandas(df, preserve_index=False)
    cols = []
    for i, field in enumerate(table.schema):
        c = table.column(i)
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
            c = c.cast(pa.timestamp("us", field.type.tz), safe=False)
        if pa.types.is_large_string(field.type):
            c = c.cast(pa.string())
        cols.append(c)
    table = pa.Table.from_arrays(cols, names=[str(n) for n in table.column_names])
    options = pacsv.WriteOptions(include_header=False, batch_size=65536)
    for batch in table.to_batches(max_chunksize=chunk_rows):
        sink = io.BytesIO()
        pacsv.write_csv(pa.Table.from_batches([batch]), sink, write_options=options)
        yield sink.getvalue()


def write_pandas(session: "Session", df: "pandas.DataFrame", target: str, *,
                 auto_create_table: bool, overwrite: bool, chunk_rows: int) -> None:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"write_pandas() takes a pandas DataFrame, not {type(df).__name__}")
    names = [str(c) for c in df.columns]
    if len(set(n.lower() for n in names)) != len(names):
        raise FreshetClientError("write_pandas(): the DataFrame's column names must be unique")
    cols_sql = ", ".join(quote_ident(n) for n in names)
    conn = session.connection
    from .session import _wrap
    import psycopg

    stmt = None
    try:
        with conn.transaction():
            cur = conn.cursor()
            if auto_create_table:
                defs = ", ".join(f"{quote_ident(n)} {_sql_type(df[c])}" for n, c in zip(names, df.columns))
                if overwrite:
                    stmt = f"DROP TABLE IF EXISTS {target}"
                    cur.execute(stmt)
                stmt = f"CREATE TABLE IF NOT EXISTS {target} ({defs})"
                cur.execute(stmt)
            elif overwrite:
                stmt = f"TRUNCATE {target}"
                cur.execute(stmt)
            stmt = f"COPY {target} ({cols_sql}) FROM STDIN WITH (FORMAT csv)"
            with cur.copy(stmt) as copy:
                for piece in _csv_chunks(df, chunk_rows):
                    copy.write(piece)
    except psycopg.Error as e:
        raise _wrap(e, stmt) from e


# Result types the COPY path reads exactly (OID -> pyarrow type name). Any
# other type (json model outputs, numeric, timestamptz, arrays, …) makes the
# whole result go through psycopg's own loaders instead.
_COPY_TYPES = {
    16: "bool_", 20: "int64", 21: "int16", 23: "int32", 700: "float32", 701: "float64",
    25: "string", 1043: "string", 19: "string", 1114: "timestamp", 1082: "date32",
}


def _copy_schema(session: "Session", query: str) -> Any:
    """The pyarrow schema of ``query``'s result if every column has a type
    the CSV path reads exactly, else None."""
    import pyarrow as pa

    cur = session._execute(f"SELECT * FROM ({query}) AS __freshet_describe LIMIT 0")
    desc = cur.description or []
    names = [d.name for d in desc]
    if not names or len(set(names)) != len(names):
        return None
    fields = []
    for d in desc:
        kind = _COPY_TYPES.get(d.type_code)
        if kind is None:
            return None
        typ = {"timestamp": pa.timestamp("us"), "date32": pa.date32(), "string": pa.string()}.get(kind)
        fields.append(pa.field(d.name, typ if typ is not None else getattr(pa, kind)()))
    return pa.schema(fields)


def _copy_to_arrow(session: "Session", query: str, schema: Any) -> "pyarrow.Table":
    """Runs ``COPY (query) TO STDOUT (FORMAT csv)`` and parses the CSV with
    pyarrow: an unquoted empty field is NULL, a quoted one an empty string."""
    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from .session import _wrap

    stmt = f"COPY ({query}) TO STDOUT WITH (FORMAT csv)"
    buf = bytearray()
    try:
        with session.connection.cursor() as cur:
            with cur.copy(stmt) as copy:
                for data in copy:
                    buf += data
    except psycopg.Error as e:
        raise _wrap(e, stmt) from e
    if not buf:
        return schema.empty_table()
    table = pacsv.read_csv(
        pa.BufferReader(pa.py_buffer(bytes(buf))),
        read_options=pacsv.ReadOptions(column_names=schema.names, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=schema, null_values=[""], strings_can_be_null=True,
            quoted_strings_can_be_null=False, true_values=["t", "true"], false_values=["f", "false"]),
    )
    return table.cast(schema)


def query_to_pandas(session: "Session", query: str) -> "pandas.DataFrame":
    import pandas as pd

    try:
        import pyarrow  # noqa: F401
    except ImportError:  # pragma: no cover
        schema = None
    else:
        schema = _copy_schema(session, query)
    if schema is not None:
        import pyarrow as pa

        table = _copy_to_arrow(session, query, schema)
        if not any(pa.types.is_integer(f.type) and table.column(i).null_count
                   for i, f in enumerate(schema)):
            return table.to_pandas(coerce_temporal_nanoseconds=True)
        # An integer column with NULLs becomes pandas' nullable integer
        # dtype: float64 would round values above 2**53 without a word.
        nullable = {pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}
        cols = {}
        for i, f in enumerate(schema):
            c = table.column(i)
            if pa.types.is_integer(f.type) and c.null_count:
                cols[i] = c.to_pandas(types_mapper=nullable.get)
            else:
                cols[i] = c.to_pandas(coerce_temporal_nanoseconds=True)
        frame = pd.DataFrame({i: cols[i] for i in range(len(schema))})
        frame.columns = schema.names
        return frame
    cur = session._execute(query)
    names: List[str] = [d.name for d in cur.description or []]
    rows = cur.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=names, coerce_float=False)
    for i in range(len(names)):
        values = [r[i] for r in rows]
        if any(v is None for v in values) and any(v is not None for v in values) and all(
                v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values):
            frame.isetitem(i, pd.array(values, dtype="Int64"))
    return frame


def query_to_arrow(session: "Session", query: str) -> "pyarrow.Table":
    import pyarrow as pa

    schema = _copy_schema(session, query)
    if schema is not None:
        return _copy_to_arrow(session, query, schema)
    cur = session._execute(query)
    names: List[str] = [d.name for d in cur.description or []]
    rows = cur.fetchall()
    columns: List[Any] = list(zip(*rows)) if rows else [() for _ in names]
    return pa.Table.from_arrays([pa.array(list(c)) for c in columns], names=names)
