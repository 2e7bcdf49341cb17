"""
The C{[ops]} listener (issue 18) binds on port 0 and answers 404 for
what no feature mounted; the observer registry of L{xmppchat.observe}.
"""

import shutil
import tempfile

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

from tests.helpers import makeConfig
from xmppchat import observe
from xmppchat.service import XMPPChatService


@defer.inlineCallbacks
def startOpsServer(case, **ops):
    """
    A started L{XMPPChatService} with the C{[ops]} listener on port 0 (and
    C{ops} keys), its data outside the checkout, stopped at C{case}'s end.
    """
    dataDir = tempfile.mkdtemp()
    case.addCleanup(shutil.rmtree, dataDir, True)
    config = makeConfig(server={"data_dir": dataDir}, c2s={"port": 0, "direct_tls": False},
                        ops={"enabled": True, "port": 0, **ops})
    service = XMPPChatService(config, reactor)
    yield service.startService()
    case.addCleanup(service.stopService)
    return service


class OpsListenerTests(TestCase):
    @defer.inlineCallbacks
    def test_listensOnPortZero(self):
        service = yield startOpsServer(self)
        port = service.portNumber("ops")
        self.assertNotEqual(port, 0)
        response = yield Agent(reactor).request(b"GET", f"http://127.0.0.1:{port}/nothing".encode())
        yield readBody(response)
        self.assertEqual(response.code, 404)

    def test_offByDefault(self):
        config = makeConfig()
        self.assertFalse(config.ops.enabled)


class ObserveTests(TestCase):
    def test_emitReachesObserversAndSurvivesFailures(self):
        seen = []

        def broken(name, fields):
            raise RuntimeError("observer bug")

        observe.addObserver(broken)
        observe.addObserver(lambda name, fields: seen.append((name, fields)))
        self.addCleanup(observe._observers.clear)
        observe.emit("login", jid="a@b/c", transport="c2s")
        self.assertEqual(seen, [("login", {"jid": "a@b/c", "transport": "c2s"})])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
