"""Snowpark's data type names (``snowflake.snowpark.types``), for
``Column.cast``: each one is the SQL type Freshet gives that kind of value.

``col("id").cast(StringType())`` is ``CAST(id AS text)``; a SQL type name
(``cast("text")``) works as well.
"""

from __future__ import annotations

from enum import Enum
from typing import Optional


class DataType:
    """A SQL type (``sql_name`` is what ``cast`` writes)."""

    sql_name = ""

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.sql_name == getattr(other, "sql_name", None)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.sql_name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class StringType(DataType):
    def __init__(self, length: Optional[int] = None) -> None:
        self.length = length
        self.sql_name = f"varchar({int(length)})" if length else "text"


class BinaryType(DataType):
    sql_name = "bytea"


class BooleanType(DataType):
    sql_name = "boolean"


class ByteType(DataType):
    sql_name = "smallint"


class ShortType(DataType):
    sql_name = "smallint"


class IntegerType(DataType):
    sql_name = "integer"


class LongType(DataType):
    sql_name = "bigint"


class FloatType(DataType):
    # Snowflake's FLOAT is a double, and so is Snowpark's FloatType
    sql_name = "double precision"


class DoubleType(DataType):
    sql_name = "double precision"


class DecimalType(DataType):
    def __init__(self, precision: int = 38, scale: int = 0) -> None:
        self.precision = int(precision)
        self.scale = int(scale)
        self.sql_name = f"numeric({self.precision}, {self.scale})"


class DateType(DataType):
    sql_name = "date"


class TimeType(DataType):
    sql_name = "time"


class TimestampTimeZone(Enum):
    DEFAULT = "default"
    NTZ = "ntz"
    LTZ = "ltz"
    TZ = "tz"


class TimestampType(DataType):
    """``timestamp``; with ``TimestampTimeZone.TZ`` or ``LTZ``, ``timestamptz``."""

    def __init__(self, timezone: TimestampTimeZone = TimestampTimeZone.DEFAULT) -> None:
        self.timezone = timezone
        aware = timezone in (TimestampTimeZone.TZ, TimestampTimeZone.LTZ)
        self.sql_name = "timestamptz" if aware else "timestamp"


class VariantType(DataType):
    sql_name = "json"


__all__ = [
    "DataType", "StringType", "BinaryType", "BooleanType", "ByteType", "ShortType", "IntegerType", "LongType",
    "FloatType", "DoubleType", "DecimalType", "DateType", "TimeType", "TimestampType", "TimestampTimeZone",
    "VariantType",
]
