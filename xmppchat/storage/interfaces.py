"""
Storage interfaces: one per store, implemented once per backend
(C{sqlite.py}, later C{mongo.py}).

Every method returns a L{Deferred}; backends translate their own errors to
L{StorageError} (or a subclass) before the Deferred fails, so nothing
backend-specific reaches the callers.  A backend is a L{Storage}: an object
with one attribute per store, started and stopped with the service.  A new
feature (dialogs, message history, privacy lists, MUC rooms) adds an
interface here, an attribute on L{Storage} and one class per backend; the
existing stores do not change.

Timestamps are POSIX seconds (floats).  Localparts are stored exactly as
given: callers pass them already prepared (nodeprep).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

from twisted.internet.defer import Deferred

SUBSCRIPTIONS = ("none", "to", "from", "both")


class StorageError(Exception):
    """
    The storage backend failed (I/O error, corrupt database, lost server).
    """


class AlreadyExists(StorageError):
    """
    A record with the same unique key (localpart, login, e-mail, external
    id, token hash, account id) already exists.
    """


class NotFound(StorageError):
    """
    The record to change does not exist.
    """


class QuotaExceeded(StorageError):
    """
    Storing the record would exceed a per-user limit.
    """


@dataclass
class Account:
    """
    One account, shared by the XMPP and REST sides (see "Identity model").

    @ivar credentials: the password's SCRAM/PLAIN verifiers as an opaque
        C{dict} (L{xmppchat.auth.credentials.Credentials.toDict}), or C{None}
        for accounts that authenticate only with tokens.
    @ivar profile: free JSON-compatible data (full name, custom data,
        privacy settings...).
    """

    id: int
    localpart: str
    login: str | None
    email: str | None
    externalId: str | None
    credentials: dict | None
    createdAt: float
    updatedAt: float
    profile: dict = field(default_factory=dict)


@dataclass
class TokenRecord:
    """
    A session token, stored by the hash of its value.

    @ivar credentials: SCRAM keys derived from the token with the account's
        salt (opaque C{dict}), so SCRAM works with tokens as passwords.
    """

    tokenHash: str
    accountId: int
    appId: int | None
    createdAt: float
    expiresAt: float
    credentials: dict | None = None


@dataclass
class RosterItem:
    """
    One contact in a user's roster (RFC 6121 §2.1.2).

    @ivar subscription: C{'none'}, C{'to'}, C{'from'} or C{'both'}.
    @ivar ask: C{'subscribe'} while the user's outbound request is pending.
    @ivar pendingIn: the contact asked to subscribe to the user and the user
        has not answered yet (RFC 6121 §3.1.3).
    @ivar hidden: the item only records such a pending request from someone
        the user has not added, and is not shown in the roster.
    """

    jid: str
    name: str | None = None
    groups: list[str] = field(default_factory=list)
    subscription: str = "none"
    ask: str | None = None
    pendingIn: bool = False
    hidden: bool = False


@dataclass
class OfflineMessage:
    """
    A message stored for a user without a connected session (XEP-0160).
    """

    id: int
    localpart: str
    stanza: str
    stamp: float


ACCOUNT_FIELDS = ("login", "email", "externalId", "credentials", "profile")


class IAccountStore(Protocol):
    """
    Accounts: integer ids allocated by the store (from 1, never reused),
    unique localpart and, when set, unique login, e-mail and external id.
    """

    def createAccount(self, localpart: str, credentials: dict | None, login: str | None = None,
                      email: str | None = None, externalId: str | None = None,
                      profile: dict | None = None, accountId: int | None = None) -> Deferred:
        """
        Create an account; fires with the new L{Account}.  C{accountId}
        forces the id (imports); otherwise the store allocates the next one.
        Fails with L{AlreadyExists} when the id, localpart, login, e-mail or
        external id is taken.
        """

    def createAccounts(self, entries: Iterable[tuple[str, dict | None]]) -> Deferred:
        """
        Bulk creation of C{(localpart, credentials)} pairs in one
        transaction.  Fires with C{(created, skipped)}: the number of
        accounts created and the list of localparts skipped because they
        already existed (or appeared earlier in C{entries}).
        """

    def getAccount(self, accountId: int) -> Deferred:
        """
        Fires with the L{Account} with this id, or C{None}.
        """

    def getAccountByLocalpart(self, localpart: str) -> Deferred:
        """
        Fires with the L{Account} with this localpart, or C{None}.
        """

    def getAccountByLogin(self, login: str) -> Deferred:
        """
        Fires with the L{Account} with this login, or C{None}.
        """

    def setCredentials(self, accountId: int, credentials: dict | None) -> Deferred:
        """
        Replace the account's credentials (password change); fails with
        L{NotFound}.
        """

    def updateAccount(self, accountId: int, **fields) -> Deferred:
        """
        Change any of C{login}, C{email}, C{externalId}, C{credentials},
        C{profile} (the localpart never changes); fires with the updated
        L{Account}.  Fails with L{NotFound}, L{AlreadyExists}, or
        C{ValueError} for another field name.
        """

    def deleteAccount(self, accountId: int) -> Deferred:
        """
        Delete the account with its tokens, roster, offline messages,
        last activity and privacy lists; fires with C{True}, or C{False} if it did not exist.
        """

    def listAccounts(self, offset: int = 0, limit: int | None = None) -> Deferred:
        """
        Fires with a page of accounts, in id order.
        """

    def countAccounts(self) -> Deferred:
        """
        Fires with the number of accounts.
        """


class ITokenStore(Protocol):
    """
    Session tokens.  A token is live while C{now < expiresAt}.  C{now}
    defaults to the storage's clock.
    """

    def addToken(self, token: TokenRecord) -> Deferred:
        """
        Store a token; fails with L{NotFound} if its account does not exist
        and L{AlreadyExists} if the hash is taken.
        """

    def getToken(self, tokenHash: str, now: float | None = None) -> Deferred:
        """
        Fires with the live L{TokenRecord} with this hash, or C{None} if
        unknown or expired.
        """

    def liveTokens(self, accountId: int, now: float | None = None) -> Deferred:
        """
        Fires with the account's live tokens, oldest first.
        """

    def deleteToken(self, tokenHash: str) -> Deferred:
        """
        Delete a token; fires with C{True} if it existed.
        """

    def purgeExpired(self, now: float | None = None) -> Deferred:
        """
        Delete expired tokens; fires with how many were deleted.
        """


class IOfflineStore(Protocol):
    """
    XEP-0160 offline messages.  Delivery is fetch, send, then delete, so a
    crash between the two re-delivers instead of losing messages.
    """

    def storeOffline(self, localpart: str, stanza: str, stamp: float, limit: int | None) -> Deferred:
        """
        Append a serialized stanza; fires with its id (increasing).  Fails
        with L{QuotaExceeded} when the user already has C{limit} messages
        (C{None}: no limit).
        """

    def countOffline(self, localpart: str) -> Deferred:
        """
        Fires with the number of messages stored for the user.
        """

    def fetchOffline(self, localpart: str) -> Deferred:
        """
        Fires with the user's L{OfflineMessage}s, oldest first, without
        deleting them.
        """

    def deleteOffline(self, localpart: str, ids: Iterable[int]) -> Deferred:
        """
        Delete the given messages of this user (ids of other users are
        ignored); fires with how many were deleted.
        """


class IRosterStore(Protocol):
    """
    Rosters (RFC 6121 §2), keyed by the owner's localpart and the contact's
    bare JID.
    """

    def getRoster(self, localpart: str) -> Deferred:
        """
        Fires with the user's L{RosterItem}s, ordered by JID.
        """

    def getRosterItem(self, localpart: str, jid: str) -> Deferred:
        """
        Fires with one L{RosterItem}, or C{None}.
        """

    def setRosterItem(self, localpart: str, item: RosterItem) -> Deferred:
        """
        Add or replace the item for C{item.jid}.  C{ValueError} for an
        unknown subscription state.
        """

    def removeRosterItem(self, localpart: str, jid: str) -> Deferred:
        """
        Remove an item; fires with C{True} if it existed.
        """


class ILastActivityStore(Protocol):
    """
    XEP-0012: when a user last logged out, and their last status text.
    """

    def setLastActivity(self, localpart: str, stamp: float, status: str | None) -> Deferred:
        """
        Record the user's logout time and status text.
        """

    def getLastActivity(self, localpart: str) -> Deferred:
        """
        Fires with C{(stamp, status)}, or C{None} if never recorded.
        """


class Storage:
    """
    A storage backend: one attribute per store, plus the service life cycle.

    @ivar accounts: L{IAccountStore}
    @ivar tokens: L{ITokenStore}
    @ivar offline: L{IOfflineStore}
    @ivar roster: L{IRosterStore}
    @ivar lastActivity: L{ILastActivityStore}
    """

    accounts: IAccountStore
    tokens: ITokenStore
    offline: IOfflineStore
    roster: IRosterStore
    lastActivity: ILastActivityStore
    privacy: "IPrivacyStore"

    def start(self) -> Deferred:
        """
        Connect and create the schema/indexes; fires when ready.
        """
        raise NotImplementedError()

    def stop(self) -> Deferred:
        """
        Finish pending work and close; fires when closed.
        """
        raise NotImplementedError()


__all__ = [
    "StorageError", "AlreadyExists", "NotFound", "QuotaExceeded",
    "Account", "TokenRecord", "RosterItem", "OfflineMessage",
    "IAccountStore", "ITokenStore", "IOfflineStore", "IRosterStore", "ILastActivityStore",
    "Storage", "SUBSCRIPTIONS", "ACCOUNT_FIELDS",
    "PrivacyRecord", "IPrivacyStore",
]


# -- privacy lists (XEP-0016 / XEP-0191) ------------------------------------


@dataclass
class PrivacyRecord:
    """
    Everything stored about one user's privacy lists (XEP-0016).

    @ivar default: the name of the default list, or C{None}.
    @ivar lists: list name -> items, in the order the lists were first
        created.  Each item is a JSON-compatible C{dict} with the keys
        C{type} (C{'jid'}, C{'group'}, C{'subscription'} or C{None}),
        C{value} (C{str} or C{None}), C{action} (C{'allow'}/C{'deny'}),
        C{order} (C{int}) and C{stanzas} (list of child element names:
        C{'message'}, C{'iq'}, C{'presence-in'}, C{'presence-out'}; empty
        means every stanza), kept exactly as given, in the given order.
    """

    default: str | None = None
    lists: dict[str, list[dict]] = field(default_factory=dict)


class IPrivacyStore(Protocol):
    """
    XEP-0016 privacy lists, keyed by the owner's localpart and the list
    name.  A list is stored whole, as JSON (one record per list, plus the
    name of the default list per user), so any document store holds it
    as is.
    """

    def getPrivacy(self, localpart: str) -> Deferred:
        """
        Fires with the user's L{PrivacyRecord} (empty if nothing is stored).
        """

    def setPrivacyList(self, localpart: str, name: str, items: list[dict]) -> Deferred:
        """
        Create or replace the list C{name} (it keeps its position among the
        user's lists when replaced).
        """

    def deletePrivacyList(self, localpart: str, name: str) -> Deferred:
        """
        Delete a list; if it was the default list the user has no default
        list any more.  Fires with C{True} if it existed.
        """

    def setDefaultPrivacyList(self, localpart: str, name: str | None) -> Deferred:
        """
        Make C{name} the default list, or decline any (C{None}).  Fails with
        L{NotFound} when there is no list C{name}.
        """
