"""
Run every REST test once per storage backend (SQLite and MongoDB on
mongomock): the API must behave the same on both.
"""

from __future__ import annotations

import pytest

from tests.api import helpers


@pytest.fixture(params=helpers.BACKENDS, autouse=True)
def apiBackend(request):
    previous = helpers.backend
    helpers.backend = request.param
    yield request.param
    helpers.backend = previous
