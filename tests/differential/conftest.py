"""
The C{server} fixture of the differential tests: every test runs once
against xmppchat (twistd, as the e2e tests start it) and once against a
private Prosody.
"""

from __future__ import annotations

import pytest

from tests.differential.prosody import ProsodyServer, requireProsody
from tests.e2e.conftest import startServer, stopServer


@pytest.fixture(scope="module", params=["xmppchat", "prosody"])
def server(request, tmp_path_factory):
    """
    A running server (C{name}, C{host}, C{port}, C{ca}, C{domain},
    C{adduser(name, password)}, C{addusers(names)}).
    """
    directory = tmp_path_factory.mktemp(request.param)
    if request.param == "prosody":
        requireProsody()
        running = ProsodyServer(directory).start()
        yield running
        running.stop()
    else:
        running = startServer(directory)
        yield running
        stopServer(running)
