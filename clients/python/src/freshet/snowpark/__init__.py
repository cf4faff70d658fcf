"""Snowpark-style DataFrame API for Freshet (``from freshet.snowpark import Session``)."""

from ..exceptions import FreshetClientError, FreshetSQLException, SnowparkSQLException
from .column import Column, CaseExpr
from .dataframe import DataFrame, DataFrameWriter, RelationalGroupedDataFrame
from .row import Row
from .session import Session

__all__ = [
    "Session", "DataFrame", "DataFrameWriter", "RelationalGroupedDataFrame", "Column", "CaseExpr",
    "Row", "FreshetSQLException", "SnowparkSQLException", "FreshetClientError",
]
