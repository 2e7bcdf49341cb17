"""
Profiles and avatars (issue 16 item 2):

- XEP-0054 vcard-temp, https://xmpp.org/extensions/xep-0054.html: a user
  sets his vCard (§3.2, an IQ set with no C{to} or to his bare JID) and
  reads it back (§3.1); anyone reads a user's vCard at his bare JID (§3.3).
  A user without one gets an empty C{<vCard/>} (as Prosody does), an
  unknown account C{service-unavailable} (RFC 6121 §8.5.1).  A vCard
  larger than C{[quotas] vcard_max_bytes} is refused with
  C{not-acceptable}; a PHOTO whose BINVAL is not base64 with
  C{bad-request}.
- XEP-0153 vCard-based avatars, https://xmpp.org/extensions/xep-0153.html
  §4.2: the server adds C{<x xmlns='vcard-temp:x:update'><photo>SHA-1
  </photo></x>} to a client's available presence (broadcast) when the
  client put no C{<photo/>} there and the account has an avatar, as
  Prosody's mod_vcard_legacy does.  The hash is cached per account while
  it has a session here, read when the account binds; the presence path
  never reads storage nor waits for it (a presence sent while the hash
  is still being read goes without it); a change made on another cluster node reaches this cache by
  the C{vcard-changed} hook, which cluster mode announces to every node
  (L{xmppchat.cluster.node.ANNOUNCED}): they read the hash again at once.
- XEP-0398 PEP/vCard avatar conversion,
  https://xmpp.org/extensions/xep-0398.html: a vCard set with a PHOTO
  publishes the XEP-0084 avatar data and metadata (item id: the SHA-1;
  new nodes get access model C{open}, nodes the user configured keep
  their configuration); a vCard set without one publishes an empty
  metadata item (XEP-0084 §4.5, avatar disabled).  A client's metadata
  publish (XEP-0084 §4.2) sets the vCard's PHOTO from the data node, an
  empty one removes it.  Needs the C{pep} module (then the account
  advertises C{urn:xmpp:pep-vcard-conversion:0}); without it vCards
  and XEP-0153 work alone.
- The REST C{avatar} field (a URL the SDK stores in the user's profile):
  a vCard without PHOTO is answered with C{<PHOTO><EXTVAL>url</EXTVAL>
  </PHOTO>} when the account's REST C{avatar} is an http(s) URL.  It
  gives no XEP-0153 hash (that is the SHA-1 of image bytes the server does
  not have) and an XMPP avatar does not change the REST field.

A user blocked by the owner (XEP-0191, XEP-0016 C{iq} deny) gets no vCard:
the privacy module refuses the IQ before it reaches this module; he gets
no presence, so no hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from twisted.internet import defer
from twisted.words.xish import domish

from xmppchat.modules.base import hook
from xmppchat.modules.pepbridge import PEPBridge
from xmppchat.stanzas import StanzaError
from xmppchat.storage.userxml.interface import VCARD
from xmppchat.xmlstream import parseElement

NS_VCARD = "vcard-temp"
NS_VCARD_UPDATE = "vcard-temp:x:update"
NS_AVATAR_DATA = "urn:xmpp:avatar:data"
NS_AVATAR_METADATA = "urn:xmpp:avatar:metadata"
NS_CONVERSION = "urn:xmpp:pep-vcard-conversion:0"
AVATAR_OPTIONS = {"pubsub#access_model": "open", "pubsub#persist_items": "true"}


class VCardChanged:
    """
    The event of C{vcard-changed}: the vCard of C{localpart} changed
    (C{remote}: on another cluster node).
    """

    def __init__(self, host, localpart: str, remote: bool = False):
        self.host = host
        self.localpart = localpart
        self.remote = remote


def child(element, name: str):
    for c in element.elements():
        if c.name == name:
            return c
    return None


def photoOf(vcard) -> tuple[bytes, str] | None:
    """
    The image bytes and MIME type of C{vcard}'s PHOTO BINVAL (C{None} when
    there is none); C{bad-request} when BINVAL is not base64.
    """
    photo = child(vcard, "PHOTO") if vcard is not None else None
    binval = child(photo, "BINVAL") if photo is not None else None
    if binval is None:
        return None
    try:
        data = base64.b64decode("".join(str(binval).split()), validate=True)
    except (binascii.Error, ValueError):
        raise StanzaError("bad-request", text="PHOTO BINVAL is not base64") from None
    if not data:
        return None
    kind = child(photo, "TYPE")
    return data, (str(kind).strip() if kind is not None else "") or "image/png"


def photoHash(vcard) -> str:
    """
    The XEP-0153 hash of C{vcard}'s photo (hex SHA-1 of the image), or C{""}.
    """
    photo = photoOf(vcard)
    return hashlib.sha1(photo[0]).hexdigest() if photo is not None else ""


def withPhoto(vcard, data: bytes | None, mimeType: str = "") -> domish.Element:
    """
    A copy of C{vcard} (or an empty vCard) whose PHOTO holds C{data}, or
    has none when C{data} is C{None}.
    """
    out = domish.Element((NS_VCARD, "vCard"))
    for c in (vcard.children if vcard is not None else ()):
        if not (isinstance(c, domish.Element) and c.name == "PHOTO"):
            out.addChild(c)
    if data is not None:
        photo = out.addElement("PHOTO")
        photo.addElement("TYPE", content=mimeType or "image/png")
        photo.addElement("BINVAL", content=base64.b64encode(data).decode("ascii"))
    return out


def restAvatarURL(account) -> str | None:
    avatar = (account.profile or {}).get("avatar") if account is not None else None
    if isinstance(avatar, str) and avatar.startswith(("https://", "http://")):
        return avatar
    return None


class VCardModule(PEPBridge):
    """
    XEP-0054, XEP-0153 §4.2 and XEP-0398 (see the module docstring).
    """

    name = "vcard"
    features = (NS_VCARD,)
    conversionFeatures = (NS_CONVERSION,)

    def setUp(self):
        PEPBridge.setUp(self)
        # localpart -> XEP-0153 hash ("" for none), for accounts with a session here
        self.hashes: dict[str, str] = {}
        # localpart -> token of the hash read in flight; a change drops it,
        # so a read that started before the change is not cached
        self.reading: dict[str, object] = {}

    # -- storage -----------------------------------------------------------

    def loadVCard(self, localpart: str) -> defer.Deferred:
        """
        Fires with the stored vCard element of C{localpart} or C{None}.
        """
        d = self.storage.userXML.getXML(localpart, VCARD, "")
        return d.addCallback(lambda text: parseElement(text, NS_VCARD) if text else None)

    @defer.inlineCallbacks
    def store(self, localpart: str, vcard) -> defer.Deferred:
        """
        Store C{vcard} (checked against the size limit), update the hash
        and tell the other nodes; fires with C{(old hash, new hash)}.
        """
        text = vcard.toXml()
        limit = self.host.config.quotas.vcard_max_bytes
        if limit and len(text.encode("utf-8")) > limit:
            raise StanzaError("not-acceptable", text=f"vCard too large (at most {limit} bytes)")
        new = photoHash(vcard)
        old = yield self.avatarHash(localpart)
        yield self.storage.userXML.setXML(localpart, VCARD, "", text)
        self.reading.pop(localpart, None)
        if self._hasSession(localpart):
            self.hashes[localpart] = new
        self.host.hooks.fire("vcard-changed", VCardChanged(self.host, localpart))
        return old, new

    def avatarHash(self, localpart: str) -> defer.Deferred:
        if localpart in self.hashes:
            return defer.succeed(self.hashes[localpart])
        return self.loadVCard(localpart).addCallback(photoHash)

    # -- XEP-0054 --------------------------------------------------------------

    @hook(f"iq-get/self/{NS_VCARD}:vCard")
    def onGetOwn(self, event):
        session = self.requireSession(event)
        return self._answer(event, session.localpart)

    @hook(f"iq-get/bare/{NS_VCARD}:vCard")
    def onGetOther(self, event):
        return self._answer(event, event.to.user)

    @defer.inlineCallbacks
    def _answer(self, event, localpart: str):
        account = yield self.storage.accounts.getAccountByLocalpart(localpart)
        if account is None:
            raise StanzaError("service-unavailable", text="No such user")
        vcard = yield self.loadVCard(localpart)
        if vcard is None:
            vcard = domish.Element((NS_VCARD, "vCard"))
        url = restAvatarURL(account)
        if url is not None and child(vcard, "PHOTO") is None:
            vcard.addElement("PHOTO").addElement("EXTVAL", content=url)
        return self.reply(event, vcard)

    @hook(f"iq-set/self/{NS_VCARD}:vCard")
    def onSet(self, event):
        session = self.requireSession(event)
        vcard = event.stanza.vCard
        photoOf(vcard)  # bad-request before anything is stored
        return self.locks.run(session.localpart, self._set, event, session.localpart, vcard)

    @defer.inlineCallbacks
    def _set(self, event, localpart, vcard):
        old, new = yield self.store(localpart, vcard)
        if old != new:
            yield self._publishAvatar(localpart, vcard, new)
        return self.reply(event)

    @hook(f"iq-set/bare/{NS_VCARD}:vCard")
    def onSetOther(self, event):
        raise StanzaError("forbidden", text="You may only set your own vCard")

    # -- XEP-0398: vCard -> PEP --------------------------------------------------

    @defer.inlineCallbacks
    def _publishAvatar(self, localpart: str, vcard, sha1: str):
        """
        Publish the vCard's photo as XEP-0084 data and metadata (§4.1,
        §4.2), or disable the avatar (§4.5).  Failures are logged: the
        vCard is stored.
        """
        if self.pep is None:
            return
        metadata = domish.Element((NS_AVATAR_METADATA, "metadata"))
        try:
            if sha1:
                data, mimeType = photoOf(vcard)
                payload = domish.Element((NS_AVATAR_DATA, "data"))
                payload.addContent(base64.b64encode(data).decode("ascii"))
                yield self.publishWithDefaults(localpart, NS_AVATAR_DATA, payload, sha1, AVATAR_OPTIONS)
                info = metadata.addElement("info")
                info["id"] = sha1
                info["bytes"] = str(len(data))
                info["type"] = mimeType
            yield self.publishWithDefaults(localpart, NS_AVATAR_METADATA, metadata, sha1 or None,
                                           AVATAR_OPTIONS)
        except Exception:
            self.log.failure("Publishing the vCard avatar of {user} to PEP failed", user=localpart)

    # -- XEP-0398: PEP -> vCard ----------------------------------------------------

    @hook("pep-published")
    def onPublished(self, event):
        """
        A client published XEP-0084 metadata: mirror it into the vCard
        (internal publishes, ours included, are not mirrored back).
        """
        if event.node != NS_AVATAR_METADATA or event.publisher is None or event.item is None:
            return None
        self.locks.run(event.owner, self._fromMetadata, event.owner, event.item).addErrback(
            lambda f: self.log.failure("Mirroring the PEP avatar of {user} failed", f, user=event.owner))
        return None

    @defer.inlineCallbacks
    def _fromMetadata(self, localpart: str, metadata):
        infos = [c for c in metadata.elements() if c.name == "info" and c.getAttribute("id")]
        vcard = yield self.loadVCard(localpart)
        if not infos:
            if photoOf(vcard) is not None:
                yield self.store(localpart, withPhoto(vcard, None))
            return
        inline = [i for i in infos if not i.getAttribute("url")] or infos
        info = next((i for i in inline if i.getAttribute("type") == "image/png"), inline[0])
        if photoHash(vcard) == info["id"]:
            return
        items = yield self.pep.getItems(localpart, NS_AVATAR_DATA, [info["id"]])
        if not items:
            return  # the data is elsewhere (a URL): nothing to copy
        try:
            data = base64.b64decode("".join(str(items[0][1]).split()), validate=True)
        except (binascii.Error, ValueError):
            return
        yield self.store(localpart, withPhoto(vcard, data, info.getAttribute("type", "")))

    # -- XEP-0153 §4.2 -------------------------------------------------------------

    def _hasSession(self, localpart: str) -> bool:
        return any(True for _ in self.host.sessions.localSessionsOf(f"{localpart}@{self.host.domain}"))

    def preload(self, localpart: str) -> None:
        """
        Read the hash of C{localpart} into the cache, unless it is there or
        being read; a read that a vCard change overtakes is not cached.
        """
        if localpart in self.hashes or localpart in self.reading:
            return
        token = self.reading[localpart] = object()

        def loaded(vcard):
            if self.reading.get(localpart) is token:
                del self.reading[localpart]
                if self._hasSession(localpart):
                    self.hashes[localpart] = photoHash(vcard)

        def failed(failure):
            if self.reading.get(localpart) is token:
                del self.reading[localpart]
            self.log.failure("Reading the avatar hash of {user} failed", failure, user=localpart)

        self.loadVCard(localpart).addCallbacks(loaded, failed)

    @hook("session-bound")
    def onBound(self, event):
        """
        Read the hash when the account binds, so that its initial presence
        finds it (as the privacy module loads its lists).
        """
        self.preload(event.session.localpart)

    @hook("pre-presence/self")
    def onPresence(self, event):
        """
        Add the avatar hash to an available broadcast presence that has no
        C{<photo/>}, from the cache.  The presence never waits for storage
        (that would delay the session's availability): while the hash is
        still being read, it goes without one.
        """
        session = event.origin
        if session is None or event.stanzaType is not None:
            return None
        localpart = session.localpart
        sha1 = self.hashes.get(localpart)
        if sha1 is None:
            self.preload(localpart)  # dropped by a change elsewhere; synchronous storage answers at once
            sha1 = self.hashes.get(localpart)
        if sha1:
            addHash(event.stanza, sha1)
        return None

    @hook("session-ended")
    def onSessionEnded(self, event):
        session = event.session
        if not any(True for _ in self.host.sessions.localSessionsOf(session.bare)):
            self.hashes.pop(session.localpart, None)

    @hook("vcard-changed")
    def onChanged(self, event):
        """
        Another node changed the vCard: read the hash again now for an
        account with a session here (forgotten otherwise), so that its
        next presence has the new one.
        """
        if event.remote:
            self.hashes.pop(event.localpart, None)
            self.reading.pop(event.localpart, None)
            if self._hasSession(event.localpart):
                self.preload(event.localpart)


def addHash(presence, sha1: str) -> None:
    """
    XEP-0153 §4.2 on C{presence}: a client's own C{<photo/>} is left alone;
    nothing is added when the account has no avatar.
    """
    update = None
    for c in presence.elements():
        if c.name == "x" and c.uri == NS_VCARD_UPDATE:
            update = c
            break
    if update is not None and child(update, "photo") is not None:
        return
    if not sha1:
        return
    if update is None:
        update = presence.addElement((NS_VCARD_UPDATE, "x"))
    update.addElement("photo", content=sha1)
