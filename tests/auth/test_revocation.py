"""
Issue 15 finding 4 on the XMPP side (L{xmppchat.auth.revocation}): a
stream remembers the credential SASL accepted, and ends (RFC 6120 §4.9.3)
when that credential is revoked, at once for C{credentials-revoked} and
within C{limits.session_recheck_seconds} for what another process changed.
"""

from __future__ import annotations

import base64

import pytest

from tests.auth.test_mechanisms import scramClient
from tests.auth.test_source import SALT, addToken, setUpSource
from tests.helpers import HostHarness, StubTransport, result, xml
from xmppchat.auth.credentials import deriveCredentials, tokenHash
from xmppchat.auth.mechanisms import ScramSha1Mechanism, ScramSha256Mechanism, Success
from xmppchat.auth.revocation import Revocation
from xmppchat.c2s.negotiation import SECURED, C2SStream
from xmppchat.storage.interfaces import TokenRecord

NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"


def condition(transport):
    """
    The stream error condition a transport was closed with, or C{None}
    while open.
    """
    error = transport.closed
    if error is None:
        return None
    return next(c.name for c in error.elements() if c.uri == NS_STREAMS and c.name != "text")


@pytest.mark.parametrize("cls", [ScramSha1Mechanism, ScramSha256Mechanism])
def test_scramSuccessNamesTheToken(cls):
    """A SCRAM login with a session token reports that token; with the password, none."""
    storage, clock, source = setUpSource()
    account = result(storage.accounts.createAccount(
        "alice", deriveCredentials("pw", SALT, iterations=64).toDict()))
    addToken(storage, account.id, "the-token", 5000)
    withToken = scramClient(cls, "alice", "the-token", source=source)
    assert isinstance(withToken, Success) and withToken.credential.tokenHash == tokenHash("the-token")
    withPassword = scramClient(cls, "alice", "pw", source=source)
    assert isinstance(withPassword, Success) and withPassword.credential is None


def saslAuth(h, localpart, password):
    """
    A stream after a real SASL PLAIN exchange on C{h}'s host: C{(stream, transport)}.
    """
    transport = StubTransport(secure=True)
    stream = C2SStream(h.host, transport)
    stream.phase = SECURED
    payload = base64.b64encode(f"\0{localpart}\0{password}".encode()).decode()
    stream.elementReceived(xml(
        f'<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">{payload}</auth>'))
    return stream, transport


def saslLogin(h, localpart, password, resource):
    """
    A stream through real SASL PLAIN and bind on C{h}'s host: C{(stream, transport)}.
    """
    stream, transport = saslAuth(h, localpart, password)
    assert transport.sent[-1].name == "success", transport.sent[-1].toXml()
    stream.elementReceived(xml(f'<iq type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind">'
                               f'<resource>{resource}</resource></bind></iq>'))
    assert stream.session is not None
    return stream, transport


def twoStreams(h):
    """
    alice logged in twice: with her password and with a session token.
    """
    account = h.addUser("alice", "alice-pw")
    result(h.storage.tokens.addToken(TokenRecord(tokenHash("tok"), account.id, 1, 0.0, 1e12)))
    byPassword = saslLogin(h, "alice", "alice-pw", "pw")
    byToken = saslLogin(h, "alice", "tok", "tok")
    assert byPassword[0].credential is None and byToken[0].credential.tokenHash == tokenHash("tok")
    return account, byPassword[1], byToken[1]


def test_revokedTokenEndsItsStreamOnly():
    """Logging out a token ends the streams it opened with reset, and no other."""
    h = HostHarness()
    _, byPassword, byToken = twoStreams(h)
    h.host.hooks.fire("credentials-revoked", Revocation("alice", tokens=(tokenHash("tok"),)))
    assert condition(byToken) == "reset" and condition(byPassword) is None


def test_passwordChangeEndsPasswordStreams():
    """A password change ends the password's streams with reset."""
    h = HostHarness()
    _, byPassword, byToken = twoStreams(h)
    h.host.hooks.fire("credentials-revoked", Revocation("alice", password=True))
    assert condition(byPassword) == "reset" and condition(byToken) is None


def test_deletionEndsEveryStream():
    """A deleted account's streams all end with not-authorized."""
    h = HostHarness()
    _, byPassword, byToken = twoStreams(h)
    h.host.hooks.fire("credentials-revoked", Revocation("alice", deleted=True))
    assert condition(byPassword) == condition(byToken) == "not-authorized"


def test_otherProcessDeletionNoticed():
    """admin deluser in another process: the periodic check ends the streams within the interval."""
    h = HostHarness(limits={"session_recheck_seconds": 5})
    account, byPassword, byToken = twoStreams(h)
    result(h.storage.accounts.deleteAccount(account.id))
    h.clock.advance(4.9)
    assert condition(byPassword) is None
    h.clock.advance(0.2)
    assert condition(byPassword) == condition(byToken) == "not-authorized"


def test_otherProcessPasswordChangeNoticed():
    """admin passwd in another process ends password streams and those of its revoked tokens."""
    h = HostHarness(limits={"session_recheck_seconds": 5})
    account, byPassword, byToken = twoStreams(h)
    result(h.storage.accounts.setCredentials(
        account.id, deriveCredentials("new-pw", iterations=64).toDict()))
    h.clock.advance(5.1)
    assert condition(byPassword) == "reset" and condition(byToken) is None
    result(h.storage.tokens.deleteAccountTokens(account.id))
    h.clock.advance(5)
    assert condition(byToken) == "reset"


def test_checkStopsWithoutStreams():
    """The check runs only while there are streams: nothing is scheduled on an idle server."""
    h = HostHarness(limits={"session_recheck_seconds": 5})
    _, byPassword, byToken = twoStreams(h)
    for transport in (byPassword, byToken):
        transport.closed = "closed"
    for session in list(h.host.sessions.all()):
        h.host.endSession(session)
    h.clock.advance(5)
    assert h.host.modules["saslauth"].streamCheck._loop is None


def test_blockedElsewhereNoticed():
    """Issue 19: an account blocked by another process has its streams ended with policy-violation."""
    h = HostHarness(limits={"session_recheck_seconds": 5})
    account, byPassword, byToken = twoStreams(h)
    result(h.storage.accounts.updateAccount(account.id, blocked=True))
    h.clock.advance(5.1)
    assert condition(byPassword) == condition(byToken) == "policy-violation"
    assert "The account is blocked" in byPassword.closed.toXml()


@pytest.mark.parametrize("password", ["alice-pw", "tok"])
def test_blockedAccountCannotLogIn(password):
    """Issue 19: right credentials of a blocked account fail with SASL account-disabled (RFC 6120 §6.5.1)."""
    h = HostHarness()
    account = h.addUser("alice", "alice-pw")
    result(h.storage.tokens.addToken(TokenRecord(tokenHash("tok"), account.id, 1, 0.0, 1e12)))
    result(h.storage.accounts.updateAccount(account.id, blocked=True))
    stream, transport = saslAuth(h, "alice", password)
    failure = transport.sent[-1]
    assert failure.name == "failure" and [c.name for c in failure.elements()] == ["account-disabled",
                                                                                  "text"]
    assert stream.phase == SECURED
    result(h.storage.accounts.updateAccount(account.id, blocked=False))
    assert saslLogin(h, "alice", password, "r")[0].session is not None
