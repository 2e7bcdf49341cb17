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

Timestamps are POSIX seconds (floats); a message's C{dateSent} is whole
seconds (int), as the ConnectyCube SDK sends it.  Localparts are stored
exactly as given: callers pass them already prepared (nodeprep).

Finders take a backend-neutral L{Query}; each backend translates it (SQL
for SQLite, a filter document for MongoDB).  Query field names are the REST
wire names (C{_id}, C{occupants_ids}, C{last_message_date_sent}, ...), so
the REST layer passes its parsed C{field[op]=value} parameters through; the
dataclasses use camelCase attributes.  Each store documents its fields.
"""

from __future__ import annotations

import secrets
import threading
import time
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

    @ivar retryAfter: seconds until the quota allows it again (a daily
        quota), or C{None} when only deleting something frees room.
    """

    def __init__(self, message: str = "", retryAfter: float | None = None):
        StorageError.__init__(self, message)
        self.retryAfter = retryAfter


class QueryTimeout(StorageError):
    """
    A query ran longer than the storage's query time limit and was
    aborted (C{storage.query_timeout_ms}: SQLite's progress handler,
    MongoDB's C{maxTimeMS}; issue 15 finding 3).  The REST layer answers
    it with 503 and C{Retry-After}.
    """


class InvalidQuery(StorageError, ValueError):
    """
    A L{Query} names an unknown operator or sort field, or gives a value of
    the wrong shape (e.g. C{in} without a list).  The REST layer answers it
    with 422/400.
    """


# -- queries -------------------------------------------------------------------

OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "all", "ctn", "start_with", "or")
LIST_OPERATORS = ("in", "nin", "all", "or")


@dataclass
class Query:
    """
    A backend-neutral finder query.

    @ivar filters: C{(field, op, value)} triples, all of which must hold.
        C{op} is one of L{OPERATORS}:
          - C{eq ne lt lte gt gte}: comparison with a scalar.  On a list
            field (occupant ids, tags) a condition holds when I{any}
            element satisfies it, and C{ne} when I{no} element equals the
            value (MongoDB semantics); C{ne} also matches a missing field.
          - C{in} / C{nin}: the value (or any list element) is / is not
            one of the given list.
          - C{all}: a list field holds every given value.
          - C{ctn}: the string contains the given substring
            (case-sensitive); C{start_with}: it starts with it.
          - C{or}: every C{or} filter of the query forms one disjunction:
            the record matches when at least one of them holds, each read
            as C{in} (C{name[or]=a,b&type[or]=2}: name is a or b, or type is
            2).
        Values are compared with their own type: ints with ints, strings
        with strings; the REST layer converts numbers before querying.
    @ivar sort: the field to sort on, or C{None} for the store's natural
        order (ids ascending); ties are broken by the natural order.
    @ivar descending: sort direction.
    @ivar limit: at most this many results (C{None}: no limit).
    @ivar skip: skip this many results first.
    @ivar anyOf: more C{(field, op, value)} filters of which at least one
        must hold, besides L{filters} (any operator but C{or}): a search of
        one text over several fields (issue 19, the admin panel's user
        search: the localpart, login, e-mail or full name contains it).
        Empty: no such condition.
    """

    filters: list = field(default_factory=list)
    sort: str | None = None
    descending: bool = False
    limit: int | None = None
    skip: int = 0
    anyOf: list = field(default_factory=list)

    def where(self, fieldName: str, op: str, value) -> "Query":
        """
        Add a filter and return this query (for chaining).
        """
        self.filters.append((fieldName, op, value))
        return self

    def validate(self) -> None:
        """
        Raise L{InvalidQuery} for an unknown operator, a list operator
        without a list (tuples and sets are accepted), a negative skip or
        limit.
        """
        if not isinstance(self.anyOf, (list, tuple)):
            raise InvalidQuery(f"anyOf must be a list of filters, not {self.anyOf!r}")
        if any(isinstance(entry, (tuple, list)) and len(entry) == 3 and entry[1] == "or"
               for entry in self.anyOf):
            raise InvalidQuery("anyOf cannot hold an \"or\" filter")
        for entry in [*self.filters, *self.anyOf]:
            if not isinstance(entry, (tuple, list)) or len(entry) != 3:
                raise InvalidQuery(f"a filter is (field, op, value), not {entry!r}")
            name, op, value = entry
            if not isinstance(name, str) or not name:
                raise InvalidQuery(f"invalid field name {name!r}")
            if op not in OPERATORS:
                raise InvalidQuery(f"unknown operator {op!r} for {name}")
            if op in LIST_OPERATORS and op != "or" and not isinstance(value, (list, tuple, set, frozenset)):
                raise InvalidQuery(f"{name}[{op}] needs a list of values")
            if op in ("ctn", "start_with") and not isinstance(value, str):
                raise InvalidQuery(f"{name}[{op}] needs a string")
        if isinstance(self.skip, bool) or not isinstance(self.skip, int) or self.skip < 0:
            raise InvalidQuery(f"skip must be a non-negative integer, not {self.skip!r}")
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int)
                                       or self.limit < 0):
            raise InvalidQuery(f"limit must be a non-negative integer, not {self.limit!r}")
        if self.sort is not None and (not isinstance(self.sort, str) or not self.sort):
            raise InvalidQuery(f"invalid sort field {self.sort!r}")


# -- ids -------------------------------------------------------------------------


_objectIdLock = threading.Lock()
_objectIdCounter = [secrets.randbelow(1 << 24)]


def newObjectId(now: float | None = None) -> str:
    """
    A new 24-hex-digit id shaped like a MongoDB ObjectId, which is what
    ConnectyCube clients expect for dialog, message and record ids: 4 bytes
    of seconds and a 3-byte counter (so the ids of one process sort in the
    order they were made, as ObjectIds do), then 5 bytes from L{secrets}.
    Issue 15 finding 11: an ObjectId's 5 process-constant bytes let anyone
    who saw one id name the next dialog, message or record; now each id
    has 40 bits nobody can predict.
    """
    seconds = int(time.time() if now is None else now) & 0xFFFFFFFF
    with _objectIdLock:
        _objectIdCounter[0] = (_objectIdCounter[0] + 1) & 0xFFFFFF
        counter = _objectIdCounter[0]
    return (seconds.to_bytes(4, "big") + counter.to_bytes(3, "big") + secrets.token_bytes(5)).hex()


def isObjectId(value) -> bool:
    """
    Whether C{value} is a 24-hex-digit string (lower or upper case).
    """
    return isinstance(value, str) and len(value) == 24 and all(c in _HEX for c in value)


_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass
class Account:
    """
    One account, shared by the XMPP and REST sides (see "Identity model").

    @ivar credentials: the password's SCRAM/PLAIN verifiers as an opaque
        C{dict} (L{xmppchat.auth.credentials.Credentials.toDict}), or C{None}
        for accounts that authenticate only with tokens.
    @ivar profile: free JSON-compatible data (full name, custom data,
        privacy settings...).
    @ivar jwt: created by a JWT login (issue 15 finding 1): it has no
        password anybody knows and only JWTs of its C{externalId} (and the
        session tokens they yield) log into it; a JWT never logs into an
        account without this mark.
    @ivar blocked: blocked by the administrator (issue 19, Moderation): no
        login over XMPP, REST or tokens until unblocked.
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
    jwt: bool = False
    blocked: bool = False


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


@dataclass(frozen=True)
class OfflineShares:
    """
    Where an offline message comes from and how much of the recipient's
    queue that source may fill (issue 15 finding 8): at most C{perSender}
    messages from C{sender} (a bare JID), C{perDialog} copies of dialog
    C{dialogId}, and C{dialogs} dialog copies in all (C{None}: no cap), so
    neither one sender nor group fan-out can fill the whole queue.
    """

    sender: str | None = None
    dialogId: str | None = None
    perSender: int | None = None
    perDialog: int | None = None
    dialogs: int | None = None


DIALOG_BROADCAST, DIALOG_GROUP, DIALOG_PRIVATE, DIALOG_PUBLIC = 1, 2, 3, 4
DIALOG_TYPES = (DIALOG_BROADCAST, DIALOG_GROUP, DIALOG_PRIVATE, DIALOG_PUBLIC)

# The list fields of a dialog that updateDialog can push to and pull from.
DIALOG_LIST_FIELDS = ("occupants_ids", "admins_ids", "pinned_messages_ids")
DIALOG_FIELDS = ("name", "photo", "description", "extensions", "permissions")
# The extension keys the server itself keeps (xmppchat.muc.room: the
# localpart of a room made the XMPP way, whether it persists, and its
# XEP-0045 settings and outcasts, xmppchat.muc.roomconfig): never
# removed by configureExtensions, never set over REST.
DIALOG_SERVER_EXTENSIONS = ("muc_room", "muc_persistent", "muc_membersonly", "muc_moderated",
                            "muc_password", "muc_public", "muc_maxusers", "muc_whois",
                            "muc_changesubject", "muc_outcasts")


@dataclass
class Dialog:
    """
    A chat dialog (ConnectyCube C{chat/Dialog}).

    @ivar id: 24 hex digits (C{_id}).
    @ivar type: one of L{DIALOG_TYPES} (1 broadcast, 2 group, 3 private,
        4 public).
    @ivar ownerId: the creator's account id (C{user_id}).
    @ivar occupantIds: account ids, ascending (C{occupants_ids}).
    @ivar adminIds: account ids, ascending (C{admins_ids}).
    @ivar pinnedMessageIds: message ids in pinning order.
    @ivar extensions: free C{str -> str} data.
    @ivar permissions: C{{"allow_preview": bool}} or empty.
    @ivar lastMessage: body of the newest message (C{last_message}), with
        its C{dateSent}, id and sender; C{None} while there is none.
    """

    id: str
    type: int
    ownerId: int
    occupantIds: list[int] = field(default_factory=list)
    adminIds: list[int] = field(default_factory=list)
    pinnedMessageIds: list[str] = field(default_factory=list)
    name: str | None = None
    photo: str | None = None
    description: str | None = None
    extensions: dict = field(default_factory=dict)
    permissions: dict = field(default_factory=dict)
    createdAt: float = 0.0
    updatedAt: float = 0.0
    lastMessage: str | None = None
    lastMessageDateSent: int | None = None
    lastMessageId: str | None = None
    lastMessageUserId: int | None = None


@dataclass
class Message:
    """
    A stored chat message (ConnectyCube C{chat/Message}).

    @ivar id: 24 hex digits: the client's id when it sent one, else
        generated (C{_id}).
    @ivar order: strictly increasing across the whole store in creation
        order; the ordering key of a dialog's history and of read/delivered
        watermarks.
    @ivar dateSent: whole POSIX seconds (C{date_sent}).
    @ivar attachments: a list of JSON objects (C{{type, uid, ...}}).
    @ivar custom: extra fields saved with the message (extension keys).
    @ivar reactions: emoji -> set of account ids.
    @ivar readIds: ids of the accounts that read it (the sender included),
        ascending; derived from the per-user watermarks when listed.
    @ivar deliveredIds: same for delivery (reading implies delivery).
    @ivar stanza: the XML of a stock XMPP client's message as received (issue
        16, XEP-0313 §4.1: forwarded verbatim by MAM, with its encrypted
        payload, OOB url, reply...), or C{None} for SDK and REST messages.
    """

    id: str
    dialogId: str
    senderId: int
    order: int
    dateSent: int
    body: str | None = None
    recipientId: int | None = None
    attachments: list = field(default_factory=list)
    custom: dict = field(default_factory=dict)
    edited: bool = False
    reactions: dict = field(default_factory=dict)
    createdAt: float = 0.0
    updatedAt: float = 0.0
    readIds: list[int] = field(default_factory=list)
    deliveredIds: list[int] = field(default_factory=list)
    stanza: str | None = None


@dataclass
class Blob:
    """
    File metadata (ConnectyCube C{blobs}); the bytes live on disk under
    C{uid}, handled by the REST layer.
    """

    id: int
    uid: str
    ownerId: int
    name: str | None = None
    contentType: str | None = None
    size: int | None = None
    public: bool = False
    completed: bool = False
    createdAt: float = 0.0
    updatedAt: float = 0.0


@dataclass
class Record:
    """
    A custom-data record (ConnectyCube C{data/<class>}).

    @ivar fields: the record's own JSON fields (everything but the ones
        below).
    """

    className: str
    id: str
    userId: int
    fields: dict = field(default_factory=dict)
    parentId: str | None = None
    createdAt: float = 0.0
    updatedAt: float = 0.0


ACCOUNT_FIELDS = ("login", "email", "externalId", "credentials", "profile", "blocked")
# Query fields of accounts that are columns; any other name is a profile key.
ACCOUNT_QUERY_FIELDS = ("id", "localpart", "login", "email", "externalId", "created_at", "updated_at")
ID_PLACEHOLDER = "{id}"


class IAccountStore(Protocol):
    """
    Accounts: integer ids allocated by the store (from 1, never reused),
    unique localpart and, when set, unique login, e-mail and external id.
    """

    def createAccount(self, localpart: str, credentials: dict | None, login: str | None = None,
                      email: str | None = None, externalId: str | None = None,
                      profile: dict | None = None, accountId: int | None = None,
                      jwt: bool = False) -> Deferred:
        """
        Create an account; fires with the new L{Account}.  C{accountId}
        forces the id (imports); otherwise the store allocates the next one.
        C{jwt} marks an account created by a JWT login (L{Account.jwt}).
        Every C{"{id}"} in C{localpart} is replaced by the allocated id in
        the same atomic operation (REST users: C{"{id}-<appId>"}).
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

    def getAccountByEmail(self, email: str) -> Deferred:
        """
        Fires with the L{Account} with this e-mail address, or C{None}.
        """

    def getAccountByExternalId(self, externalId: str) -> Deferred:
        """
        Fires with the L{Account} with this external id, or C{None}.
        """

    def getAccounts(self, accountIds: Iterable[int]) -> Deferred:
        """
        Fires with C{{id: Account}} for those of the ids that exist.
        """

    def findAccounts(self, query: "Query") -> Deferred:
        """
        Fires with the accounts matching a L{Query}.  Fields: C{id},
        C{localpart}, C{login}, C{email}, C{externalId}, C{created_at},
        C{updated_at} (L{ACCOUNT_QUERY_FIELDS}); any other name is a key of
        the profile (C{full_name}, C{phone}, C{user_tags} (a list) ...).
        Default order: id.  Fails with L{InvalidQuery}.
        """

    def setCredentials(self, accountId: int, credentials: dict | None) -> Deferred:
        """
        Replace the account's credentials (password change); fails with
        L{NotFound}.
        """

    def updateAccount(self, accountId: int, **fields) -> Deferred:
        """
        Change any of C{login}, C{email}, C{externalId}, C{credentials},
        C{profile}, C{blocked} (the localpart never changes); fires with the updated
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

    def countAccounts(self, query: "Query | None" = None) -> Deferred:
        """
        Fires with the number of accounts (matching the query's filters;
        its sort, skip and limit are ignored).
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

    def deleteAccountTokens(self, accountId: int, keep: str | None = None) -> Deferred:
        """
        Delete every token of the account but the one hashed C{keep}
        (password change, issue 15 finding 4); fires with the deleted
        hashes.
        """

    def deleteJWTTokens(self) -> Deferred:
        """
        Delete every token of the accounts a JWT created (L{Account.jwt}):
        the application's JWT secret was rotated (issue 19).  Fires with
        how many were deleted; the streams they opened end at the next
        L{xmppchat.auth.revocation.StreamCheck}.
        """

    def liveTokenHashes(self, tokenHashes: Iterable[str], now: float | None = None) -> Deferred:
        """
        Fires with the set of those hashes whose token is stored and live
        (one query: the periodic check of live XMPP streams).
        """

    def revokeToken(self, tokenHash: str, expiresAt: float) -> Deferred:
        """
        Delete the token and remember its hash as revoked until
        C{expiresAt}: a JWT, which its issuer keeps signed, must not be
        accepted again after logout (issue 15 finding 4).
        """

    def isRevoked(self, tokenHash: str, now: float | None = None) -> Deferred:
        """
        Fires with whether the hash was revoked and has not expired yet.
        """

    def purgeExpired(self, now: float | None = None) -> Deferred:
        """
        Delete expired tokens and revocations; fires with how many tokens
        were deleted.
        """


class IOfflineStore(Protocol):
    """
    XEP-0160 offline messages.  Delivery is fetch, send, then delete, so a
    crash between the two re-delivers instead of losing messages.
    """

    def storeOffline(self, localpart: str, stanza: str, stamp: float, limit: int | None,
                     shares: OfflineShares | None = None) -> Deferred:
        """
        Append a serialized stanza; fires with its id (increasing).  Fails
        with L{QuotaExceeded} (its text for the sender) when the user
        already has C{limit} messages (C{None}: no limit), or when the
        source named in C{shares} already has its share of them (counted
        by index on the user and the sender or dialog).
        """

    def storeOfflineMany(self, entries: list, stamp: float, limit: int | None,
                         shares: OfflineShares | None = None) -> Deferred:
        """
        L{storeOffline} for many C{(localpart, stanza)} at once, in one
        write (the admin announcement to every account, review 18 #1);
        fires with the localparts refused (L{QuotaExceeded}), the others
        stored.
        """

    def countOffline(self, localpart: str) -> Deferred:
        """
        Fires with the number of messages stored for the user.
        """

    def countAllOffline(self) -> Deferred:
        """
        Fires with the number of messages stored for all users (the admin
        API's stats, issue 18).
        """

    def largestOfflineQueues(self, limit: int) -> Deferred:
        """
        Fires with the C{limit} users with the most stored messages, as
        C{[(localpart, count)...]}, most first, then by localpart (the
        admin panel's Overview, issue 19).
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
        Add or replace the item for C{item.jid} and advance the user's
        roster version (RFC 6121 §2.6) in the same write; fires with the
        new version.  C{ValueError} for an unknown subscription state.
        """

    def removeRosterItem(self, localpart: str, jid: str) -> Deferred:
        """
        Remove an item; fires with the new roster version if it existed
        (the version advances with the removal), C{None} if not.
        """

    def getRosterVersion(self, localpart: str) -> Deferred:
        """
        Fires with the user's roster version (RFC 6121 §2.6): an opaque
        string, C{"0"} for a roster never changed, that every write of
        the roster advances.  A reader that must pair it with the items
        reads the version first: items newer than the version only make a
        client ask again, never miss a change.
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


class IDialogStore(Protocol):
    """
    Dialogs and each user's state in them.

    Query fields (L{listDialogs}): C{_id}, C{type}, C{name}, C{photo},
    C{description}, C{user_id}, C{occupants_ids}, C{admins_ids},
    C{pinned_messages_ids} (lists), C{created_at}, C{updated_at},
    C{last_message}, C{last_message_date_sent}, C{last_message_id},
    C{last_message_user_id}, and C{extensions.<key>}.  Natural order
    (default, and the tie-break of any sort): C{created_at}, then C{_id}.
    """

    def createDialog(self, type: int, ownerId: int, occupantIds: Iterable[int] = (),
                     adminIds: Iterable[int] = (), name: str | None = None,
                     photo: str | None = None, description: str | None = None,
                     extensions: dict | None = None, permissions: dict | None = None,
                     dialogId: str | None = None, limit: int | None = None) -> Deferred:
        """
        Create a dialog; fires with the L{Dialog}.  With C{limit}, fails
        with L{QuotaExceeded} when the owner already owns C{limit} dialogs.  The owner is added to
        the occupants (except for public dialogs, whose members are their
        subscribers); duplicates are dropped.  C{dialogId} forces the id
        (L{AlreadyExists} if taken).  C{ValueError} for an unknown type.
        For a private dialog use L{findPrivateDialog} first: at most one
        private dialog exists per pair (L{AlreadyExists} otherwise).
        """

    def getDialog(self, dialogId: str) -> Deferred:
        """
        Fires with the L{Dialog}, or C{None}.
        """

    def getDialogs(self, dialogIds: Iterable[str]) -> Deferred:
        """
        Fires with C{{id: Dialog}} for those of the ids that exist.
        """

    def findPrivateDialog(self, userA: int, userB: int) -> Deferred:
        """
        Fires with the private dialog between these two accounts (in
        either order), or C{None}.
        """

    def updateDialog(self, dialogId: str, push: dict | None = None, pull: dict | None = None,
                     **fields) -> Deferred:
        """
        Atomically change a dialog: set any of L{DIALOG_FIELDS} (C{name},
        C{photo}, C{description}, C{extensions}, C{permissions}), push and
        pull ids to/from L{DIALOG_LIST_FIELDS} (C{{"occupants_ids": [4]}};
        pushing keeps an id once; pull applies after push).  Bumps
        C{updatedAt}; fires with the L{Dialog}.  Fails with L{NotFound}, or
        C{ValueError} for another field.  C{extensions} written keeps only
        the keys of the last L{configureExtensions}, the others as stored
        (L{xmppchat.storage.common.writtenExtensions}).
        """

    def deleteDialog(self, dialogId: str) -> Deferred:
        """
        Delete the dialog for everyone, with its messages and all per-user
        state; fires with C{True}, or C{False} if it did not exist.
        """

    def listDialogs(self, userId: int | None, query: "Query | None" = None) -> Deferred:
        """
        Fires with the dialogs of a user matching the query: those it
        occupies, the public dialogs it subscribed to and every broadcast
        dialog, without those it hid (L{setHidden}).  C{userId=None}: all dialogs (public dialog
        directory, admin).  Fails with L{InvalidQuery}.
        """

    def countDialogs(self, userId: int | None, query: "Query | None" = None) -> Deferred:
        """
        Fires with how many dialogs L{listDialogs} would return without skip
        and limit.
        """

    def configureExtensions(self, fields: Iterable[str], keep: Iterable[str] = ()) -> Deferred:
        """
        The dialog extension fields the administrator configured (issue 17
        item 5): index each for L{listDialogs} filters (and drop the
        indexes of fields no longer configured); when the set of C{fields}
        and C{keep} (the server's own keys) differs from the previous
        call's, or on the first call, remove every other extension key
        from every dialog.  Fires with the number of dialogs changed.
        """

    def setHidden(self, dialogId: str, userId: int, hidden: bool = True) -> Deferred:
        """
        Hide a dialog from one user's list ("delete for me") or show it
        again.  A new message in the dialog shows it again for everyone.
        Fails with L{NotFound} for an unknown dialog.
        """

    def subscribe(self, dialogId: str, userId: int) -> Deferred:
        """
        Subscribe a user to a public dialog; fires with C{True} if newly
        subscribed.  L{NotFound} for an unknown dialog, C{ValueError} if it
        is not public.
        """

    def unsubscribe(self, dialogId: str, userId: int) -> Deferred:
        """
        Fires with C{True} if the user was subscribed.
        """

    def listSubscribers(self, dialogId: str, skip: int = 0, limit: int | None = None) -> Deferred:
        """
        Fires with the subscribers' account ids, in subscription order.
        """

    def countSubscribers(self, dialogId: str) -> Deferred:
        """
        Fires with the number of subscribers.
        """

    def setNotifications(self, dialogId: str, userId: int, enabled: bool) -> Deferred:
        """
        Turn push notifications for this dialog on or off for one user.
        Fails with L{NotFound} for an unknown dialog.
        """

    def getNotifications(self, dialogId: str, userId: int) -> Deferred:
        """
        Fires with C{True} (the default) or C{False}.
        """


class IMessageStore(Protocol):
    """
    Chat history, with read/delivered state kept as per-(dialog, user)
    watermarks on L{Message.order}: marking a message read marks every
    earlier message of the dialog read.

    Query fields (L{listMessages}): C{_id}, C{sender_id}, C{recipient_id},
    C{date_sent}, C{message} (the body), C{created_at}, C{updated_at},
    and custom field names.  Sort fields: C{date_sent} (ties by order),
    C{created_at}, C{updated_at}; default: order ascending.

    Unread counts are exact: a message counts as unread for a user when it
    is in the dialog, was not sent by that user, lies above the user's read
    watermark and history cut-off (L{clearHistory}), and was not deleted
    for that user or for everyone.  Edits and reactions change a message in
    place and never count.
    """

    def createMessage(self, dialogId: str, senderId: int, body: str | None,
                      dateSent: int | None = None, messageId: str | None = None,
                      recipientId: int | None = None, attachments: list | None = None,
                      custom: dict | None = None, dailyLimit: int | None = None,
                      stanza: str | None = None) -> Deferred:
        """
        Store a message and, in the same operation, make it the dialog's
        last message (C{last_message*}, C{updatedAt}) and show the dialog
        again to users who hid it.  C{dateSent} defaults to now.  Fires with
        the L{Message}.  Fails with L{NotFound} for an unknown dialog,
        L{AlreadyExists} for a taken C{messageId}, C{ValueError} for an id
        that is not 24 hex digits.  With C{dailyLimit}, counts the message
        against the sender's messages of the current UTC day and fails with
        L{QuotaExceeded} (C{retryAfter}: seconds to midnight) beyond it.
        C{stanza}: the XML of a stock client's message, kept verbatim for
        XEP-0313 (L{Message.stanza}).
        """

    def hasSent(self, senderId: int, dialogIds: Iterable[str]) -> Deferred:
        """
        Fires with whether C{senderId} has a stored message in any of these
        dialogs (by index on dialog and sender): whether the user took part
        in one of them (issue 15 finding 9).
        """

    def getMessage(self, messageId: str, userId: int | None = None) -> Deferred:
        """
        Fires with the L{Message} (with C{readIds}/C{deliveredIds}), or
        C{None}; with C{userId}, also C{None} when deleted for that user or
        behind their history cut-off.
        """

    def listMessages(self, dialogId: str, userId: int | None = None,
                     query: "Query | None" = None) -> Deferred:
        """
        Fires with the dialog's messages matching the query; with
        C{userId}, without those deleted for that user or behind their
        cut-off.  C{dialogId} may also be a list of dialog ids (the
        XEP-0313 account archive: one indexed query over all of them).
        Fails with L{InvalidQuery}.
        """

    def countMessages(self, dialogId: str, userId: int | None = None,
                      query: "Query | None" = None) -> Deferred:
        """
        Fires with how many messages L{listMessages} would return without
        skip and limit.
        """

    def editMessage(self, messageId: str, body: str | None = None,
                    attachments: list | None = None, custom: dict | None = None) -> Deferred:
        """
        Replace the body (and, when given, attachments or custom fields),
        set C{edited}; updates the dialog's C{last_message} when this is
        the last message.  Fires with the L{Message}; L{NotFound}.
        """

    def react(self, messageId: str, userId: int, add: str | None = None,
              remove: str | None = None) -> Deferred:
        """
        Add and/or remove one user's reaction; fires with the message's
        reactions (emoji -> set of ids, emptied emojis dropped);
        L{NotFound}.
        """

    def deleteForUser(self, messageIds: Iterable[str], userId: int) -> Deferred:
        """
        Hide messages from one user; fires with the ids that exist.
        """

    def deleteMessages(self, messageIds: Iterable[str]) -> Deferred:
        """
        Delete messages for everyone (with their reactions and per-user
        state) and recompute the last message of their dialogs; fires with
        the list of ids that existed.
        """

    def markRead(self, dialogId: str, userId: int, messageId: str | None = None) -> Deferred:
        """
        Move the user's read watermark up to the given message (C{None}:
        the newest message of the dialog); it never moves down.  Reading
        also marks delivered.  Fires with C{True} if it moved.  Fails with
        L{NotFound} for a message of another dialog or an unknown one.
        """

    def markDelivered(self, dialogId: str, userId: int, messageId: str | None = None) -> Deferred:
        """
        Same for the delivered watermark.
        """

    def unreadCounts(self, userId: int, dialogIds: Iterable[str] | None = None) -> Deferred:
        """
        Fires with C{{dialogId: unread}} for the given dialogs (unknown ids
        give 0), or for all the user's dialogs (as L{IDialogStore.listDialogs}
        lists them) when C{None}.  The total is the sum.
        """

    def clearHistory(self, dialogId: str, userId: int) -> Deferred:
        """
        Hide every message currently in the dialog from one user (a per-user
        cut-off); later messages show normally.
        """

    def searchMessages(self, dialogIds: Iterable[str], text: str, userId: int | None = None,
                       dateFrom: int | None = None, dateTo: int | None = None,
                       limit: int | None = 100) -> Deferred:
        """
        Fires with the messages of the given dialogs whose body contains
        C{text}, case-insensitively (Unicode case folding), with C{dateSent}
        in C{[dateFrom, dateTo]}, newest first; with C{userId}, without
        those deleted for or cleared by that user.
        """


class IBlobStore(Protocol):
    """
    File metadata.  Ids are integers allocated by the store (never
    reused); C{uid} is 32 random hex digits.
    """

    def createBlob(self, ownerId: int, name: str | None, contentType: str | None,
                   public: bool = False, limit: int | None = None) -> Deferred:
        """
        Fires with a new, not yet completed L{Blob}.  With C{limit}, fails
        with L{QuotaExceeded} when the owner already has C{limit} blobs
        (incomplete ones included).
        """

    def reserveBlobBytes(self, blobId: int, size: int, limit: int | None = None) -> Deferred:
        """
        Record the size of an upload before its bytes are written, so it
        counts against the owner's bytes at once; with C{limit}, fail with
        L{QuotaExceeded} when the sizes of the owner's other blobs plus
        C{size} exceed it.  Fires with the L{Blob}; L{NotFound}.
        """

    def blobUsage(self, ownerId: int) -> Deferred:
        """
        Fires with C{(count, bytes)} of the owner's blobs (bytes: the sizes
        known, uploaded or reserved).
        """

    def deleteIncompleteBlobs(self, createdBefore: float, limit: int = 500) -> Deferred:
        """
        Delete up to C{limit} blobs that are still incomplete and were
        created before C{createdBefore}; fires with the deleted L{Blob}s (the
        caller removes their files).  A blob completed meanwhile is kept.
        """

    def getBlob(self, blobId: int) -> Deferred:
        """
        Fires with the L{Blob}, or C{None}.
        """

    def getBlobByUid(self, uid: str) -> Deferred:
        """
        Fires with the L{Blob} with this uid, or C{None}.
        """

    def updateBlob(self, blobId: int, **fields) -> Deferred:
        """
        Change any of C{name}, C{contentType}, C{size}, C{public},
        C{completed}; fires with the L{Blob}.  L{NotFound}, C{ValueError}.
        """

    def completeBlob(self, blobId: int, size: int) -> Deferred:
        """
        Record the upload's size and mark it completed; fires with the
        L{Blob}.  L{NotFound}.
        """

    def deleteBlob(self, blobId: int) -> Deferred:
        """
        Fires with C{True} if it existed.
        """

    def listBlobs(self, ownerId: int, skip: int = 0, limit: int | None = None) -> Deferred:
        """
        Fires with the owner's blobs, by id.
        """

    def countBlobs(self, ownerId: int) -> Deferred:
        """
        Fires with the number of the owner's blobs.
        """


class IRecordStore(Protocol):
    """
    Custom-data records, grouped by class name.  Query fields: C{_id},
    C{user_id}, C{_parent_id}, C{created_at}, C{updated_at}; any other name
    is a record field.
    """

    def createRecord(self, className: str, userId: int, fields: dict,
                     parentId: str | None = None, recordId: str | None = None,
                     limit: int | None = None, byteLimit: int | None = None) -> Deferred:
        """
        Fires with the new L{Record}.  L{AlreadyExists} for a taken id.
        With C{limit} or C{byteLimit}, L{QuotaExceeded} when the user's
        records of all classes would be more than C{limit}, or their sizes
        (their fields' JSON, UTF-8) more than C{byteLimit} bytes.
        """

    def recordUsage(self, userId: int) -> Deferred:
        """
        Fires with C{(count, bytes)} of the user's records of all classes.
        """

    def getRecord(self, className: str, recordId: str) -> Deferred:
        """
        Fires with the L{Record}, or C{None}.
        """

    def listRecords(self, className: str, query: "Query | None" = None) -> Deferred:
        """
        Fires with the class's records matching the query (natural order:
        C{created_at}, then C{_id}).  L{InvalidQuery}.
        """

    def countRecords(self, className: str, query: "Query | None" = None) -> Deferred:
        """
        Fires with how many records L{listRecords} would return without skip
        and limit.
        """

    def updateRecord(self, className: str, recordId: str, set: dict | None = None,
                     unset: Iterable[str] = (), byteLimit: int | None = None) -> Deferred:
        """
        Set and remove fields (top-level keys); bumps C{updatedAt}; fires
        with the L{Record}.  L{NotFound}; L{QuotaExceeded} when the change
        grows the user's record bytes beyond C{byteLimit}.
        """

    def deleteRecord(self, className: str, recordId: str) -> Deferred:
        """
        Fires with C{True} if it existed.
        """


class Storage:
    """
    A storage backend: one attribute per store, plus the service life cycle.

    @ivar accounts: L{IAccountStore}
    @ivar tokens: L{ITokenStore}
    @ivar offline: L{IOfflineStore}
    @ivar roster: L{IRosterStore}
    @ivar lastActivity: L{ILastActivityStore}
    @ivar dialogs: L{IDialogStore}
    @ivar messages: L{IMessageStore}
    @ivar blobs: L{IBlobStore}
    @ivar records: L{IRecordStore}
    """

    accounts: IAccountStore
    tokens: ITokenStore
    offline: IOfflineStore
    roster: IRosterStore
    lastActivity: ILastActivityStore
    dialogs: IDialogStore
    messages: IMessageStore
    blobs: IBlobStore
    records: IRecordStore
    privacy: "IPrivacyStore"
    # L{xmppchat.storage.unlocks.interface.IUnlockStore}
    unlocks: object
    # L{xmppchat.storage.pep.interface.IPEPStore}
    pep: object
    # L{xmppchat.storage.uploads.interface.IUploadSlotStore}
    uploads: object
    # L{xmppchat.storage.userxml.interface.IUserXMLStore}
    userXML: object
    # L{xmppchat.storage.settings.interface.ISettingStore} (issue 19)
    settings: object
    # L{xmppchat.storage.portable.interface.IPortableStore} (export/import)
    portable: object

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
    "StorageError", "AlreadyExists", "NotFound", "QuotaExceeded", "InvalidQuery", "QueryTimeout",
    "Query", "OPERATORS", "newObjectId", "isObjectId",
    "Account", "TokenRecord", "RosterItem", "OfflineMessage", "OfflineShares", "Dialog", "Message", "Blob", "Record",
    "IAccountStore", "ITokenStore", "IOfflineStore", "IRosterStore", "ILastActivityStore",
    "IDialogStore", "IMessageStore", "IBlobStore", "IRecordStore",
    "Storage", "SUBSCRIPTIONS", "ACCOUNT_FIELDS", "ACCOUNT_QUERY_FIELDS", "ID_PLACEHOLDER",
    "DIALOG_TYPES", "DIALOG_BROADCAST", "DIALOG_GROUP", "DIALOG_PRIVATE", "DIALOG_PUBLIC",
    "DIALOG_FIELDS", "DIALOG_LIST_FIELDS", "DIALOG_SERVER_EXTENSIONS",
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
