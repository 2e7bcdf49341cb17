"""
A user's privacy settings (issue 17 items 3 and 4), kept in
C{Account.profile["privacy_settings"]} (written by the REST layer,
L{xmppchat.api.users}) and read by the chat modules from the session's
account, which the C{account-updated} event (L{AccountUpdated}) keeps
fresh on every cluster node.

- C{typing_indicators}, C{read_receipts}: C{{"enabled": bool}}, on unless
  explicitly C{False}.  As the Stream docs say of the same settings
  (reference/stream-sdk.md, "Privacy"): a user who turns typing off sends
  no chat states to anyone; a user who turns read receipts off has his
  read state hidden from the others on every surface (XEP-0333 read
  markers are not forwarded, REST C{read_ids}/C{views_count} and the
  sender's C{last_message_status} leave him out) while his reads are still
  recorded, so his own unread counts stay exact.
- C{last_seen}: C{{"visibility": "everyone" | "contacts" | "nobody"}}
  (absent: the server's C{[privacy] last_seen_default}), who may see his
  XEP-0012 last activity and subscribe to his status streaming
  (L{lastSeenAllowed}); C{nobody} also keeps him out of
  C{/users/online.json}.  C{contacts} is issue 15 finding 9's consent: a
  presence subscription to him, or a dialog in which he has written.  His
  privacy lists hiding his presence from the asker win over any setting.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPING = "typing_indicators"
READ_RECEIPTS = "read_receipts"
SWITCHES = (TYPING, READ_RECEIPTS)
LAST_SEEN = "last_seen"

EVERYONE, CONTACTS, NOBODY = "everyone", "contacts", "nobody"
VISIBILITIES = (EVERYONE, CONTACTS, NOBODY)

# how the asker stands to the user whose last activity he asks for
SELF = "self"          # the user himself
CONTACT = "contact"    # subscribed to his presence, or in a dialog he has written in
STRANGER = "stranger"  # anyone else
HIDDEN = "hidden"      # the user's privacy lists keep his presence from the asker

#: last-seen visibility -> the relations it shows last activity to
LAST_SEEN_RULES = {
    EVERYONE: frozenset((SELF, CONTACT, STRANGER)),
    CONTACTS: frozenset((SELF, CONTACT)),
    NOBODY: frozenset((SELF,)),
}

#: XEP-0333 markers that tell the sender his message was read (C{received}
#: only says it was delivered, and XEP-0184 receipts are delivery receipts)
READ_MARKERS = frozenset(("displayed", "acknowledged"))


def storedSettings(profile) -> dict:
    """
    The C{privacy_settings} object of a profile, or C{{}}.
    """
    settings = profile.get("privacy_settings") if isinstance(profile, dict) else None
    return settings if isinstance(settings, dict) else {}


def _switchOn(stored: dict, setting: str) -> bool:
    entry = stored.get(setting)
    return not (isinstance(entry, dict) and entry.get("enabled") is False)


def _lastSeen(stored: dict, default: str) -> str:
    entry = stored.get(LAST_SEEN)
    value = entry.get("visibility") if isinstance(entry, dict) else None
    return value if value in LAST_SEEN_RULES else default


def switchOn(account, setting: str) -> bool:
    """
    Whether the account's switch C{setting} (L{SWITCHES}) is on: only an
    explicit C{{"enabled": False}} turns it off.
    """
    return _switchOn(storedSettings(getattr(account, "profile", None)), setting)


def hidesTyping(account) -> bool:
    return not switchOn(account, TYPING)


def hidesReads(account) -> bool:
    return not switchOn(account, READ_RECEIPTS)


def lastSeenOf(account, default: str) -> str:
    """
    The account's last-seen visibility: its own choice, else C{default}.
    """
    return _lastSeen(storedSettings(getattr(account, "profile", None)), default)


def needsRelation(visibility: str) -> bool:
    """
    Whether L{lastSeenAllowed} depends on the asker being a contact (so the
    roster and dialog lookups are worth making).
    """
    return (CONTACT in LAST_SEEN_RULES[visibility]) != (STRANGER in LAST_SEEN_RULES[visibility])


def lastSeenAllowed(visibility: str, relation: str) -> bool:
    """
    The last-seen rule: may someone with C{relation} to the user see his
    last activity under his C{visibility}?
    """
    return relation in LAST_SEEN_RULES[visibility]


def effectiveSettings(profile, lastSeenDefault: str) -> dict:
    """
    The settings as their owner sees them (the REST C{privacy_settings}):
    every switch and the last-seen visibility, defaults filled in.
    """
    stored = storedSettings(profile)
    out = {key: {"enabled": _switchOn(stored, key)} for key in SWITCHES}
    out[LAST_SEEN] = {"visibility": _lastSeen(stored, lastSeenDefault)}
    return out


async def readersHidingReads(accounts, userIds) -> frozenset:
    """
    Those of C{userIds} who turned read receipts off (one batched account
    read; C{accounts} is the account store).
    """
    ids = set(userIds)
    if not ids:
        return frozenset()
    found = await accounts.getAccounts(ids)
    return frozenset(i for i, account in found.items() if hidesReads(account))


def visibleReaders(readIds, viewer: int, hiding) -> list:
    """
    The readers of a message that C{viewer} may know of: his own read
    stays visible to him, the others' only if they show their reads.
    """
    return [i for i in readIds if i == viewer or i not in hiding]


@dataclass
class AccountUpdated:
    """
    The event of C{account-updated}: C{account} as now stored.  Fired by
    whoever changes an account (the REST layer); the cluster relays it to
    the other nodes, which fire it again with C{remote} set (not relayed
    again).
    """

    account: object
    remote: bool = False

    @property
    def localpart(self) -> str:
        return self.account.localpart


__all__ = ["AccountUpdated", "CONTACT", "CONTACTS", "EVERYONE", "HIDDEN", "LAST_SEEN",
           "LAST_SEEN_RULES", "NOBODY", "READ_MARKERS", "SELF", "STRANGER", "SWITCHES",
           "VISIBILITIES", "effectiveSettings", "hidesReads", "hidesTyping", "lastSeenAllowed",
           "lastSeenOf", "needsRelation", "readersHidingReads", "switchOn", "visibleReaders"]
