"""Freshet's Python client: Snowpark-style DataFrames (``freshet.snowpark``)
and a model registry (``freshet.ml.registry``) over psycopg 3."""

from .exceptions import FreshetClientError, FreshetError, FreshetSQLException

__version__ = "0.1.0"
__all__ = ["FreshetError", "FreshetSQLException", "FreshetClientError", "__version__"]
