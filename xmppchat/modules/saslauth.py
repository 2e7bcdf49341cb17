"""
SASL authentication on client streams (RFC 6120 §6): PLAIN (RFC 4616) on
encrypted streams, SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677)
everywhere SASL is offered.  Passwords and REST session tokens are accepted
alike.  Failed attempts are slowed down and then refused for their source
(L{LoginThrottle}, the host's, shared with the REST logins: a guesser is
stopped, the account's owner elsewhere is not); a stream gets at most
C{MAX_ATTEMPTS} tries (RFC 6120 §6.4.5).  An account the administrator
blocked fails with C{<account-disabled/>} (§6.5.1, issue 19).  A stream whose credential is
revoked later (logout, password change, account deletion) is ended
(L{xmppchat.auth.revocation}, issue 15 finding 4).
"""

from __future__ import annotations

import base64
import binascii

from twisted.words.xish import domish

from xmppchat import observe
from xmppchat.auth.mechanisms import MECHANISMS, Challenge, SASLFailure, Success
from xmppchat.auth.revocation import BLOCKED_TEXT, StreamCheck, endRevoked
from xmppchat.auth.source import StorageCredentialSource
from xmppchat.c2s.negotiation import CONNECTED, SECURED
from xmppchat.modules.base import Module, hook
from xmppchat.ratelimit import isLoopback

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
MAX_ATTEMPTS = 5
# the failures the throttle counts (not aborts, nor its own refusals)
COUNTED = ("not-authorized", "malformed-request", "invalid-authzid", "incorrect-encoding")
LOCKED_TEXT = "Too many failed logins; try later"


class SASLModule(Module):
    """
    RFC 6120 §6: SASL negotiation. https://www.rfc-editor.org/rfc/rfc6120#section-6
    """

    name = "saslauth"

    def setUp(self):
        self.source = StorageCredentialSource(self.host.storage, self.host.clock,
                                              getattr(self.host, "passwordCheckers", ()))
        self.throttle = self.host.loginThrottle
        self.streamCheck = StreamCheck(self.host, self.host.config.limits.session_recheck_seconds)

    def tearDown(self):
        self.streamCheck.stop()

    @hook("session-bound")
    def onBound(self, event):
        self.streamCheck.wake()

    @hook("credentials-revoked")
    def onRevoked(self, revocation):
        endRevoked(self.host, revocation)

    def mechanismsFor(self, stream) -> list[str]:
        """
        The mechanisms to offer on C{stream}: none before STARTTLS when it is
        required; PLAIN only on encrypted streams (or on loopback when the
        configuration allows it).
        """
        c2s = self.host.config.c2s
        if stream.phase == CONNECTED:
            loopbackPlain = c2s.allow_plain_without_tls_on_loopback and isLoopback(stream.peer)
            if c2s.starttls_required and stream.transport.canStartTLS and not loopbackPlain:
                return []
            return [m for m in MECHANISMS if m != "PLAIN" or loopbackPlain]
        if stream.phase == SECURED:
            return list(MECHANISMS)
        return []

    @hook("stream-features", priority=50)
    def onFeatures(self, event):
        mechanisms = self.mechanismsFor(event.stream)
        if mechanisms:
            element = event.features.addElement((NS_SASL, "mechanisms"))
            for name in mechanisms:
                element.addElement("mechanism", content=name)

    @hook(f"stream-element/{NS_SASL}:auth")
    def onAuth(self, event):
        stream, element = event.stream, event.stanza
        state = stream.state.setdefault("sasl", {"attempts": 0, "mechanism": None})
        if state["mechanism"] is not None:
            return self._fail(stream, None, "malformed-request", "An exchange is in progress")
        name = element.getAttribute("mechanism", "")
        if name not in self.mechanismsFor(stream):
            return self._fail(stream, None, "invalid-mechanism", f"Mechanism {name!r} is not offered")
        data = self._decode(element)
        if data is False:
            return self._fail(stream, None, "incorrect-encoding", "Invalid base64")
        mechanism = MECHANISMS[name](self.source, self.host.domain, self.host.secret)
        state["mechanism"] = mechanism
        d = mechanism.start(data)
        d.addCallbacks(self._step, self._failed, callbackArgs=(stream,), errbackArgs=(stream,))
        return True

    @hook(f"stream-element/{NS_SASL}:response")
    def onResponse(self, event):
        stream = event.stream
        state = stream.state.get("sasl")
        if not state or state["mechanism"] is None:
            return self._fail(stream, None, "malformed-request", "No exchange in progress")
        data = self._decode(event.stanza)
        if data is False:
            return self._fail(stream, state["mechanism"], "incorrect-encoding", "Invalid base64")
        d = state["mechanism"].respond(data or b"")
        d.addCallbacks(self._step, self._failed, callbackArgs=(stream,), errbackArgs=(stream,))
        return True

    @hook(f"stream-element/{NS_SASL}:abort")
    def onAbort(self, event):
        state = event.stream.state.get("sasl")
        return self._fail(event.stream, state and state["mechanism"], "aborted", None)

    # -- exchange steps -------------------------------------------------

    def _decode(self, element):
        text = str(element).strip()
        if not text:
            return None
        if text == "=":
            return b""
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return False

    def _step(self, step, stream):
        if stream.closed:
            return
        if isinstance(step, Challenge):
            challenge = domish.Element((NS_SASL, "challenge"))
            challenge.addContent(base64.b64encode(step.data).decode("ascii") if step.data else "=")
            stream.send(challenge)
            return
        assert isinstance(step, Success)
        localpart = step.localpart
        if self.throttle.refusedFor(stream.peer, localpart):
            return self._fail(stream, None, "temporary-auth-failure", LOCKED_TEXT)
        account = self.source.recentAccount(localpart)
        if account is not None:
            return self._succeeded(account, stream, step)
        d = self.host.storage.accounts.getAccountByLocalpart(localpart)
        d.addCallback(self._succeeded, stream, step)
        d.addErrback(self._failed, stream)

    def _succeeded(self, account, stream, step):
        if stream.closed:
            return
        if account is None:
            return self._fail(stream, None, "not-authorized", "No such account")
        if account.blocked:  # issue 19: told only once the credentials are proven
            return self._fail(stream, None, "account-disabled", BLOCKED_TEXT)
        delay = self.throttle.delayFor(stream.peer, step.localpart, True)
        self.throttle.recordSuccess(stream.peer, step.localpart)
        mechanism = (stream.state.pop("sasl", None) or {}).get("mechanism")
        success = domish.Element((NS_SASL, "success"))
        if step.additionalData:
            success.addContent(base64.b64encode(step.additionalData).decode("ascii"))

        def send():
            if stream.closed:
                return
            stream.send(success)
            stream.authenticated(step.localpart, account, step.credential,
                                 getattr(mechanism, "name", None))

        self._after(delay, send)

    def _failed(self, failure, stream):
        if failure.check(SASLFailure):
            error = failure.value
            condition, text = error.condition, error.text
        else:
            self.log.failure("SASL exchange failed", failure)
            condition, text = "temporary-auth-failure", "Internal error"
        state = stream.state.get("sasl") or {}
        return self._fail(stream, state.get("mechanism"), condition, text)

    def _fail(self, stream, mechanism, condition, text):
        """
        Send a SASL C{<failure/>} (RFC 6120 §6.5), delayed when this
        source keeps failing for this account; C{temporary-auth-failure}
        (§6.5.11) for any answer while the source is locked out (right or
        wrong: no oracle); end the stream after too many attempts.
        """
        state = stream.state.setdefault("sasl", {"attempts": 0, "mechanism": None})
        current = mechanism or state["mechanism"]
        state["mechanism"] = None
        localpart = getattr(mechanism, "localpart", None) if mechanism is not None else None
        delay = 0.0
        if condition in COUNTED:
            if self.throttle.refusedFor(stream.peer, localpart):
                condition, text = "temporary-auth-failure", LOCKED_TEXT
            else:
                delay = self.throttle.delayFor(stream.peer, localpart, False)
                self.throttle.recordFailure(stream.peer, localpart)
        if condition != "aborted":
            account = getattr(current, "localpart", None)
            observe.emit("login-failed", account=account and f"{account}@{self.host.domain}",
                         transport=stream.transportName, mechanism=getattr(current, "name", None),
                         address=stream.peer, condition=condition)
        state["attempts"] += 1
        failure = domish.Element((NS_SASL, "failure"))
        failure.addElement(condition)
        if text:
            failure.addElement("text", content=text)

        def send():
            if stream.closed:
                return
            stream.send(failure)
            if state["attempts"] >= MAX_ATTEMPTS:
                stream.close("policy-violation", "Too many authentication attempts")

        self._after(delay, send)
        return True

    def _after(self, delay: float, send) -> None:
        if delay > 0:
            self.host.clock.callLater(delay, send)
        else:
            send()
