"""Snowpark's exception names (``freshet.snowpark.exceptions``)."""

from ..exceptions import FreshetClientError, FreshetSQLException, SnowparkSQLException

__all__ = ["FreshetSQLException", "SnowparkSQLException", "FreshetClientError"]
