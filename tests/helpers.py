"""
Test doubles: a host on in-memory synchronous storage and a fake clock, a
stub transport, and helpers to log users in and parse XML literals.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from types import SimpleNamespace

from twisted.internet import defer, task
from twisted.words.protocols.jabber import jid as jjid

from xmppchat.admin import result
from xmppchat.auth.credentials import deriveCredentials
from xmppchat.c2s.negotiation import AUTHENTICATED, C2SStream
from xmppchat.config import buildConfig
from xmppchat.host import Host
from xmppchat.storage.sqlite import SQLiteStorage
from xmppchat.xmlstream import parseElement


def xml(text: str):
    """
    Parse an XML literal into a domish element (default namespace
    C{jabber:client}).
    """
    return parseElement(text)


def makeConfig(**sections):
    data = {"storage": {"backend": "sqlite", "path": ":memory:"}, "limits": {"ping_interval": 0}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return buildConfig(data)


class StubTransport:
    """
    An L{ITransport} that records what the stream sends.
    """

    def __init__(self, secure=False, peer="127.0.0.1", anyTo=False):
        self.secure = secure
        self.canStartTLS = True
        self.peer = peer
        self.anyTo = anyTo
        self.factory = SimpleNamespace(tlsContext=object())
        self.sent = []
        self.headers = []
        self.closed = None
        self.tlsStarted = False
        self.restarts = 0
        self.lastReceived = 0.0

    def sendHeader(self, streamId, domain, features):
        self.headers.append((streamId, domain, features))

    def send(self, element):
        self.sent.append(element)

    def startTLS(self):
        self.tlsStarted = True
        self.secure = True

    def restart(self):
        self.restarts += 1

    def close(self, error=None):
        self.closed = error if error is not None else "closed"

    def bound(self):
        pass

    def pop(self):
        sent, self.sent = self.sent, []
        return sent


def harnessStorage(backend: str):
    """
    An unstarted synchronous in-memory storage: C{sqlite} or C{mongomock}
    (modules that declare C{BOTH_BACKENDS = True} run on both, see
    C{tests/conftest.py}).
    """
    if backend == "mongomock":
        import mongomock

        from xmppchat.storage.mongo import MongoStorage

        return MongoStorage(client=mongomock.MongoClient(), database="harness", synchronous=True)
    return SQLiteStorage(":memory:", synchronous=True)


class HostHarness:
    """
    A host with every default module, in-memory storage and a fake clock.

    @cvar backend: the storage backend of new harnesses (set per test by
        the C{harnessBackend} fixture).
    """

    backend = "sqlite"

    def __init__(self, modules=None, **sections):
        self.clock = task.Clock()
        self.config = makeConfig(**sections)
        self.storage = harnessStorage(self.backend)
        result(self.storage.start())
        self.host = Host(self.config, self.storage, self.clock)
        self.host.loadModules(modules)

    def addUser(self, localpart, password="secret"):
        creds = deriveCredentials(password, iterations=64)
        return result(self.storage.accounts.createAccount(localpart, creds.toDict()))

    def connect(self, localpart, resource=None, available=True, secure=True):
        """
        A stream already authenticated as C{localpart} and bound (to
        C{resource} or a random one), optionally with initial presence sent.
        Returns C{(session, transport)}.
        """
        transport = StubTransport(secure=secure)
        stream = C2SStream(self.host, transport)
        account = result(self.storage.accounts.getAccountByLocalpart(localpart))
        if account is None:
            account = self.addUser(localpart)
        stream.phase = AUTHENTICATED
        stream.localpart = localpart
        stream.account = account
        bind = '<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/>' if resource is None else (
            f'<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>{resource}</resource></bind>')
        stream.elementReceived(xml(f'<iq type="set" id="bind1">{bind}</iq>'))
        assert stream.session is not None, [e.toXml() for e in transport.sent]
        transport.pop()
        if available:
            stream.elementReceived(xml("<presence/>"))
            transport.pop()
        return stream.session, transport

    def send(self, session, text):
        session.stream.elementReceived(xml(text))

    # -- dialog fixtures (through the storage API) --------------------------

    def accountId(self, localpart):
        account = result(self.storage.accounts.getAccountByLocalpart(localpart))
        if account is None:
            account = self.addUser(localpart)
        return account.id

    def addDialog(self, type, owner, occupants=(), admins=(), **fields):
        """
        Create a dialog of C{type} owned by the localpart C{owner} with the
        given occupant and admin localparts (accounts made on demand).
        """
        return result(self.storage.dialogs.createDialog(
            type, self.accountId(owner), occupantIds=[self.accountId(o) for o in occupants],
            adminIds=[self.accountId(a) for a in admins], **fields))

    def unread(self, localpart, dialog):
        return result(self.storage.messages.unreadCounts(self.accountId(localpart), [dialog.id]))[dialog.id]


def sentMessages(transport):
    """
    The C{<message/>} stanzas C{transport} sent since the last pop (other
    stanzas are discarded).
    """
    return [e for e in transport.pop() if e.name == "message"]


def bareJID(localpart, domain="localhost"):
    return jjid.JID(tuple=(localpart, domain, None))


__all__ = ["xml", "result", "makeConfig", "StubTransport", "HostHarness", "bareJID", "sentMessages", "defer"]


class HeldRead:
    """
    C{obj.name} replaced so that its first call for which C{when(*args)}
    returns a Deferred held back, as a storage read still in flight (the
    race tests of issue 16 review finding 4).  L{release} fires it with
    C{snapshot} of what the real method gave when it was called: the value
    read before the writes made meanwhile.
    """

    def __init__(self, obj, name: str, when=lambda *args: True, snapshot=lambda value: value):
        self.real = getattr(obj, name)
        self.held: list = []

        def call(*args):
            if not self.held and when(*args):
                self.held.append((defer.Deferred(), snapshot(result(self.real(*args)))))
                return self.held[0][0]
            return self.real(*args)

        setattr(obj, name, call)

    @property
    def called(self) -> bool:
        return bool(self.held)

    def release(self) -> None:
        d, value = self.held[0]
        d.callback(value)


@contextlib.contextmanager
def readOnlyDirectory(path):
    """
    Create C{path} and make it read-only for this user: immutable when root
    (who ignores file modes), mode 0555 otherwise (issue 18).
    """
    path.mkdir()
    if os.getuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
