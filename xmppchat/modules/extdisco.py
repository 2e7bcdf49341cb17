"""
XEP-0215: External Service Discovery (urn:xmpp:extdisco:2),
https://xmpp.org/extensions/xep-0215.html -- the STUN/TURN servers of
C{[extdisco] services} for audio/video calls (XEP-0479 A/V Calling: "STUN/
TURN server discovery", which Conversations and Dino use).

- C{<services xmlns="urn:xmpp:extdisco:2" [type]/>} to the server from a
  logged-in user (§3.2): every configured service (of that type), each
  C{<service type host [port] [transport] [name]/>};
- a service with a C{secret} gets time-limited credentials, made as TURN
  servers check them with a shared secret (coturn's C{use-auth-secret}):
  username C{<expiry>:<bare JID>}, password base64(HMAC-SHA1(secret,
  username)), C{expires} and C{restricted="true"} (§3.3); static
  C{username}/C{password} are sent as they are;
- C{<credentials><service type host/></credentials>} (§3.4): that
  service's credentials, C{item-not-found} for an unknown one.

The feature is advertised only when services are configured.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from twisted.words.xish import domish

from xmppchat.modules.base import Module, hook
from xmppchat.stanzas import StanzaError

NS_EXTDISCO = "urn:xmpp:extdisco:2"
SERVICE_KEYS = {"type": str, "host": str, "port": int, "transport": str, "name": str,
                "secret": str, "username": str, "password": str}
SERVICE_TYPES = ("stun", "stuns", "turn", "turns")


def turnCredentials(secret: str, user: str, expires: int) -> tuple[str, str]:
    """
    Time-limited TURN credentials (draft-uberti-behave-turn-rest §2.2).
    """
    username = f"{expires}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


class ExtDiscoModule(Module):
    """
    XEP-0215 §3.2-§3.4 from a static list of services.
    """

    name = "extdisco"

    def setUp(self):
        self.services = self.host.config.extdisco.services
        self.features = (NS_EXTDISCO,) if self.services else ()

    def serviceElement(self, service: dict, user: str) -> domish.Element:
        element = domish.Element((NS_EXTDISCO, "service"))
        for key in ("type", "host", "port", "transport", "name"):
            if key in service:
                element[key] = str(service[key])
        username, password = service.get("username"), service.get("password")
        if "secret" in service:
            ttl = self.host.config.extdisco.credentials_seconds
            expires = int(self.host.clock.seconds()) + ttl
            username, password = turnCredentials(service["secret"], user, expires)
            element["expires"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        if username is not None:
            element["username"] = username
            element["password"] = password or ""
            element["restricted"] = "true"
        return element

    @hook(f"iq-get/host/{NS_EXTDISCO}:services")
    def onServices(self, event):
        session = self.requireSession(event)
        wanted = event.stanza.services.getAttribute("type")
        query = domish.Element((NS_EXTDISCO, "services"))
        if wanted:
            query["type"] = wanted
        for service in self.services:
            if wanted in (None, "", service["type"]):
                query.addChild(self.serviceElement(service, session.bare))
        return self.reply(event, query)

    @hook(f"iq-get/host/{NS_EXTDISCO}:credentials")
    def onCredentials(self, event):
        session = self.requireSession(event)
        asked = [c for c in event.stanza.credentials.elements() if c.name == "service"]
        if len(asked) != 1:
            raise StanzaError("bad-request", text="Name exactly one service")
        host, kind = asked[0].getAttribute("host"), asked[0].getAttribute("type")
        for service in self.services:
            if service["host"] == host and service["type"] == kind and (
                    "secret" in service or "username" in service):
                query = domish.Element((NS_EXTDISCO, "credentials"))
                query.addChild(self.serviceElement(service, session.bare))
                return self.reply(event, query)
        raise StanzaError("item-not-found", text="No such service with credentials")
