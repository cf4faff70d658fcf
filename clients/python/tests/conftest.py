"""Fixtures for the client's tests, which run against a live Freshet server.

The server is named by FRESHET_HOST and FRESHET_PORT (and FRESHET_USER,
default ``freshet``). crates/freshet/tests/python_client.rs starts one and
sets them; by hand: ``freshet serve --listen 127.0.0.1:5433`` then
``FRESHET_HOST=127.0.0.1 FRESHET_PORT=5433 python -m pytest clients/python/tests``.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any, Dict, Iterator

import pytest

# Test the source next to these tests, not whatever copy is installed.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from freshet.snowpark import Session  # noqa: E402


def server_config() -> Dict[str, Any]:
    host = os.environ.get("FRESHET_HOST")
    port = os.environ.get("FRESHET_PORT")
    if not host or not port:
        pytest.skip("no server: set FRESHET_HOST and FRESHET_PORT (see tests/conftest.py)")
    return {"host": host, "port": int(port), "user": os.environ.get("FRESHET_USER", "freshet")}


@pytest.fixture(scope="session")
def config() -> Dict[str, Any]:
    return server_config()


@pytest.fixture
def session(config: Dict[str, Any]) -> Iterator[Session]:
    """A session in a database of its own (created for the test)."""
    db = "t_" + uuid.uuid4().hex[:12]
    with Session.builder.configs({**config, "database": "freshet"}).create() as admin:
        admin.sql(f"CREATE DATABASE {db}").collect()
    s = Session.builder.configs({**config, "database": db}).create()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def raw(session: Session):
    """The session's psycopg connection, for writing the same query in SQL."""
    return session.connection
