"""
The storage contract: one suite that every backend must pass.

The C{storage} fixture is parametrised over L{BACKENDS}; a backend is added
with one entry in L{FACTORIES} (a callable returning an unstarted storage
whose calls fire synchronously).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import mongomock
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from xmppchat.storage.interfaces import (
    DIALOG_GROUP,
    DIALOG_PRIVATE,
    DIALOG_PUBLIC,
    Account,
    AlreadyExists,
    Blob,
    Dialog,
    InvalidQuery,
    Message,
    NotFound,
    OfflineMessage,
    QuotaExceeded,
    Query,
    Record,
    RosterItem,
    TokenRecord,
    isObjectId,
)
from xmppchat.storage.mongo import MongoStorage
from xmppchat.storage.sqlite import SQLiteStorage

FACTORIES = {
    "sqlite-memory": lambda reactor: SQLiteStorage(":memory:", reactor=reactor, synchronous=True),
    # A file: reads run on the query_only read connections.
    "sqlite-file": lambda reactor: SQLiteStorage(
        os.path.join(tempfile.mkdtemp(prefix="xmppchat-contract-"), "db.sqlite3"),
        reactor=reactor, synchronous=True),
    "mongomock": lambda reactor: MongoStorage(client=mongomock.MongoClient(), database="test",
                                              reactor=reactor, synchronous=True),
}
if os.environ.get("XMPPCHAT_TEST_MONGODB_URI"):
    FACTORIES["mongodb"] = lambda reactor: realMongo(reactor)
BACKENDS = list(FACTORIES)


def realMongo(reactor):
    """
    A storage on a fresh database of the real server named by
    C{XMPPCHAT_TEST_MONGODB_URI}, dropped when the storage stops.
    """
    uri = os.environ["XMPPCHAT_TEST_MONGODB_URI"]
    name = f"xmppchat_test_{uuid.uuid4().hex[:12]}"
    storage = MongoStorage(uri, name, reactor=reactor, synchronous=True, timeoutMs=3000)
    stop = storage.stop

    def dropAndStop():
        storage.db.client.drop_database(name)
        return stop()

    storage.stop = dropAndStop
    return storage


def result(d):
    """
    The result of an already-fired Deferred; raises its failure.
    """
    out, failures = [], []
    d.addCallbacks(out.append, failures.append)
    if failures:
        failures[0].raiseException()
    assert out, "Deferred has not fired"
    return out[0]


def failure(d, exceptionType):
    """
    The exception of an already-failed Deferred, checked against C{exceptionType}.
    """
    with pytest.raises(exceptionType) as info:
        result(d)
    return info.value


def openBackend(name, reactor=None):
    """
    A started storage of backend C{name}; timestamps from C{reactor}'s
    clock, or the real time.
    """
    storage = FACTORIES[name](reactor)
    result(storage.start())
    return storage


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def clock():
    clock = Clock()
    clock.advance(1_700_000_000)
    return clock


@pytest.fixture
def storage(backend, clock):
    storage = openBackend(backend, clock)
    yield storage
    result(storage.stop())
    if backend == "sqlite-file":
        shutil.rmtree(os.path.dirname(storage.path), ignore_errors=True)


CREDS = {"salt": "c2FsdA==", "iterations": 4096, "sha256": {"storedKey": "x", "serverKey": "y"}}


def addAccount(storage, localpart, **kwargs):
    return result(storage.accounts.createAccount(localpart, kwargs.pop("credentials", CREDS), **kwargs))


# -- accounts ---------------------------------------------------------------------


def test_createAccountReturnsAccount(storage):
    """createAccount fires with the new Account, id 1 first, every field set."""
    account = addAccount(storage, "alice", login="alice-login", email="a@example.com",
                         externalId="ext-1", profile={"full_name": "Alice"})
    assert isinstance(account, Account)
    assert account.id == 1
    assert (account.localpart, account.login, account.email, account.externalId) == (
        "alice", "alice-login", "a@example.com", "ext-1")
    assert account.credentials == CREDS
    assert account.profile == {"full_name": "Alice"}
    assert account.createdAt == account.updatedAt > 0


def test_createAccountDefaults(storage):
    """Optional fields default to None and the profile to an empty dict."""
    account = addAccount(storage, "bob", credentials=None)
    assert (account.login, account.email, account.externalId, account.credentials) == (
        None, None, None, None)
    assert account.profile == {}
    assert result(storage.accounts.getAccount(account.id)) == account


def test_accountIdsIncreaseAndAreNotReused(storage):
    """Ids are allocated in increasing order and a deleted id is never handed out again."""
    ids = [addAccount(storage, f"u{i}").id for i in range(3)]
    assert ids == [1, 2, 3]
    assert result(storage.accounts.deleteAccount(3))
    assert addAccount(storage, "u3").id == 4


def test_createAccountWithGivenId(storage):
    """A given id is used, and later allocations continue above it."""
    assert addAccount(storage, "imported", accountId=100).id == 100
    assert addAccount(storage, "next").id == 101
    failure(storage.accounts.createAccount("other", CREDS, accountId=100), AlreadyExists)


@pytest.mark.parametrize("field", ["localpart", "login", "email", "externalId"])
def test_createAccountDuplicate(storage, field):
    """A duplicate localpart, login, e-mail or external id fails with AlreadyExists."""
    values = {"localpart": "alice", "login": "l", "email": "e@x", "externalId": "x1"}
    addAccount(storage, **values)
    other = {"localpart": "bob", "login": "l2", "email": "e2@x", "externalId": "x2"}
    other[field] = values[field]
    error = failure(storage.accounts.createAccount(credentials=CREDS, **other), AlreadyExists)
    assert result(storage.accounts.countAccounts()) == 1
    assert isinstance(str(error), str)


def test_nullUniqueFieldsDoNotCollide(storage):
    """Many accounts may leave login, e-mail and external id unset."""
    addAccount(storage, "a")
    addAccount(storage, "b")
    assert result(storage.accounts.countAccounts()) == 2


def test_getAccountLookups(storage):
    """Accounts are found by id, localpart and login; unknown keys give None."""
    account = addAccount(storage, "alice", login="Alice")
    assert result(storage.accounts.getAccount(account.id)) == account
    assert result(storage.accounts.getAccountByLocalpart("alice")) == account
    assert result(storage.accounts.getAccountByLogin("Alice")) == account
    assert result(storage.accounts.getAccount(99)) is None
    assert result(storage.accounts.getAccountByLocalpart("bob")) is None
    assert result(storage.accounts.getAccountByLogin("alice")) is None


def test_setCredentials(storage):
    """setCredentials replaces the credentials; unknown ids fail with NotFound."""
    account = addAccount(storage, "alice")
    new = {"salt": "bmV3", "iterations": 8192}
    assert result(storage.accounts.setCredentials(account.id, new)) is None
    assert result(storage.accounts.getAccount(account.id)).credentials == new
    failure(storage.accounts.setCredentials(42, new), NotFound)


def test_updateAccount(storage):
    """updateAccount changes the given fields, bumps updatedAt and returns the account."""
    account = addAccount(storage, "alice", login="old")
    updated = result(storage.accounts.updateAccount(
        account.id, login="new", email="a@x", externalId="e", profile={"custom_data": "ü"}))
    assert (updated.login, updated.email, updated.externalId) == ("new", "a@x", "e")
    assert updated.profile == {"custom_data": "ü"}
    assert updated.updatedAt >= account.updatedAt
    assert updated.createdAt == account.createdAt
    assert result(storage.accounts.getAccountByLogin("new")) == updated
    assert result(storage.accounts.getAccountByLogin("old")) is None
    cleared = result(storage.accounts.updateAccount(account.id, login=None, profile=None))
    assert (cleared.login, cleared.profile) == (None, {})


def test_updateAccountErrors(storage):
    """updateAccount: NotFound, AlreadyExists on a taken login, ValueError on other fields."""
    alice = addAccount(storage, "alice", login="a")
    addAccount(storage, "bob", login="b")
    failure(storage.accounts.updateAccount(99, login="x"), NotFound)
    failure(storage.accounts.updateAccount(alice.id, login="b"), AlreadyExists)
    failure(storage.accounts.updateAccount(alice.id, localpart="carol"), ValueError)
    failure(storage.accounts.updateAccount(alice.id, id=7), ValueError)
    assert result(storage.accounts.getAccount(alice.id)).login == "a"


def test_deleteAccountCascades(storage):
    """deleteAccount removes the account with its tokens, roster, offline messages and last activity."""
    alice = addAccount(storage, "alice")
    bob = addAccount(storage, "bob")
    for account in (alice, bob):
        lp = account.localpart
        result(storage.tokens.addToken(TokenRecord(f"t-{lp}", account.id, None, 0.0, 1e12, None)))
        result(storage.roster.setRosterItem(lp, RosterItem("carol@localhost")))
        result(storage.offline.storeOffline(lp, "<message/>", 1.0, 10))
        result(storage.lastActivity.setLastActivity(lp, 5.0, "away"))
    assert result(storage.accounts.deleteAccount(alice.id)) is True
    assert result(storage.accounts.getAccount(alice.id)) is None
    assert result(storage.accounts.getAccountByLocalpart("alice")) is None
    assert result(storage.tokens.getToken("t-alice", 0.0)) is None
    assert result(storage.roster.getRoster("alice")) == []
    assert result(storage.offline.countOffline("alice")) == 0
    assert result(storage.lastActivity.getLastActivity("alice")) is None
    assert result(storage.tokens.getToken("t-bob", 0.0)) is not None
    assert len(result(storage.roster.getRoster("bob"))) == 1
    assert result(storage.offline.countOffline("bob")) == 1
    assert result(storage.lastActivity.getLastActivity("bob")) == (5.0, "away")
    assert result(storage.accounts.deleteAccount(alice.id)) is False


def test_listAndCountAccounts(storage):
    """listAccounts pages through accounts in id order; countAccounts counts them."""
    for name in ["c", "a", "b", "d"]:
        addAccount(storage, name)
    assert result(storage.accounts.countAccounts()) == 4
    assert [a.localpart for a in result(storage.accounts.listAccounts())] == ["c", "a", "b", "d"]
    assert [a.id for a in result(storage.accounts.listAccounts(1, 2))] == [2, 3]
    assert [a.id for a in result(storage.accounts.listAccounts(offset=3))] == [4]
    assert result(storage.accounts.listAccounts(10, 5)) == []


def test_emptyStore(storage):
    """A new storage has no accounts."""
    assert result(storage.accounts.countAccounts()) == 0
    assert result(storage.accounts.listAccounts()) == []


# mongomock checks unique indexes in quadratic time: a smaller batch there.
BULK = {"mongomock": 1500}


def test_createAccountsBulk(storage, backend):
    """createAccounts creates 10,000 accounts at once with consecutive ids."""
    n = BULK.get(backend, 10000)
    entries = [(f"user{i}", {"n": i}) for i in range(n)]
    created, skipped = result(storage.accounts.createAccounts(entries))
    assert (created, skipped) == (n, [])
    assert result(storage.accounts.countAccounts()) == n
    account = result(storage.accounts.getAccountByLocalpart(f"user{n - 1}"))
    assert (account.id, account.credentials, account.profile) == (n, {"n": n - 1}, {})


def test_createAccountsSkipsDuplicates(storage):
    """createAccounts skips existing localparts and repeats within the batch, keeping the first."""
    addAccount(storage, "alice")
    created, skipped = result(storage.accounts.createAccounts(
        [("bob", {"v": 1}), ("alice", {"v": 2}), ("carol", None), ("bob", {"v": 3})]))
    assert created == 2
    assert skipped == ["alice", "bob"]
    assert result(storage.accounts.getAccountByLocalpart("alice")).credentials == CREDS
    assert result(storage.accounts.getAccountByLocalpart("bob")).credentials == {"v": 1}
    assert result(storage.accounts.getAccountByLocalpart("carol")).credentials is None


def test_createAccountsEmpty(storage):
    """createAccounts with nothing to create does nothing."""
    assert result(storage.accounts.createAccounts([])) == (0, [])


def test_createAccountsInvalidLocalpart(storage):
    """createAccounts refuses an empty localpart and creates none of the batch."""
    failure(storage.accounts.createAccounts([("ok", None), ("", None)]), ValueError)
    assert result(storage.accounts.countAccounts()) == 0


def test_createAccountInvalidArguments(storage):
    """createAccount refuses an empty localpart and a non-integer or non-positive id."""
    failure(storage.accounts.createAccount("", CREDS), ValueError)
    failure(storage.accounts.createAccount("a", CREDS, accountId="1"), TypeError)
    failure(storage.accounts.createAccount("a", CREDS, accountId=0), ValueError)


# -- tokens -----------------------------------------------------------------------


def token(hash_, accountId, expiresAt, createdAt=0.0, appId=None, credentials=None):
    return TokenRecord(tokenHash=hash_, accountId=accountId, appId=appId, createdAt=createdAt,
                       expiresAt=expiresAt, credentials=credentials)


def test_addAndGetToken(storage):
    """A stored token comes back whole while it is live."""
    account = addAccount(storage, "alice")
    record = token("h1", account.id, 200.0, createdAt=100.0, appId=7, credentials={"k": "v"})
    assert result(storage.tokens.addToken(record)) is None
    assert result(storage.tokens.getToken("h1", 150.0)) == record
    assert result(storage.tokens.getToken("unknown", 150.0)) is None


def test_getTokenExpired(storage):
    """A token is no longer returned once now reaches expiresAt."""
    account = addAccount(storage, "alice")
    result(storage.tokens.addToken(token("h1", account.id, 200.0)))
    assert result(storage.tokens.getToken("h1", 199.9)) is not None
    assert result(storage.tokens.getToken("h1", 200.0)) is None
    assert result(storage.tokens.getToken("h1", 500.0)) is None


def test_getTokenDefaultsToCurrentTime(storage):
    """Without now, expiry is checked against the current time."""
    account = addAccount(storage, "alice")
    result(storage.tokens.addToken(token("past", account.id, 1.0)))
    result(storage.tokens.addToken(token("future", account.id, 1e12)))
    assert result(storage.tokens.getToken("past")) is None
    assert result(storage.tokens.getToken("future")) is not None
    assert [t.tokenHash for t in result(storage.tokens.liveTokens(account.id))] == ["future"]


def test_addTokenErrors(storage):
    """addToken: AlreadyExists for a taken hash, NotFound for an unknown account."""
    account = addAccount(storage, "alice")
    result(storage.tokens.addToken(token("h1", account.id, 200.0)))
    failure(storage.tokens.addToken(token("h1", account.id, 300.0)), AlreadyExists)
    failure(storage.tokens.addToken(token("h2", 99, 300.0)), NotFound)


def test_liveTokens(storage):
    """liveTokens lists one account's unexpired tokens, oldest first."""
    alice = addAccount(storage, "alice")
    bob = addAccount(storage, "bob")
    result(storage.tokens.addToken(token("late", alice.id, 500.0, createdAt=20.0)))
    result(storage.tokens.addToken(token("early", alice.id, 500.0, createdAt=10.0)))
    result(storage.tokens.addToken(token("old", alice.id, 100.0, createdAt=1.0)))
    result(storage.tokens.addToken(token("bobs", bob.id, 500.0)))
    live = result(storage.tokens.liveTokens(alice.id, 150.0))
    assert [t.tokenHash for t in live] == ["early", "late"]
    assert result(storage.tokens.liveTokens(99, 150.0)) == []


def test_deleteToken(storage):
    """deleteToken removes a token and says whether it existed."""
    account = addAccount(storage, "alice")
    result(storage.tokens.addToken(token("h1", account.id, 200.0)))
    assert result(storage.tokens.deleteToken("h1")) is True
    assert result(storage.tokens.getToken("h1", 0.0)) is None
    assert result(storage.tokens.deleteToken("h1")) is False


def test_deleteJWTTokens(storage, monkeypatch):
    """deleteJWTTokens deletes the tokens of every JWT-made account (over several batches), no other."""
    from xmppchat.storage import mongo

    monkeypatch.setattr(mongo, "_CHUNK", 2)
    alice = addAccount(storage, "alice")
    jwts = [result(storage.accounts.createAccount("{id}-1", None, externalId=f"x{i}", jwt=True))
            for i in range(3)]
    result(storage.tokens.addToken(token("mine", alice.id, 1e12)))
    for i, account in enumerate(jwts):
        result(storage.tokens.addToken(token(f"jwt{i}", account.id, 1e12)))
    result(storage.tokens.addToken(token("jwt0b", jwts[0].id, 1e12)))
    assert result(storage.tokens.deleteJWTTokens()) == 4
    assert [t.tokenHash for t in result(storage.tokens.liveTokens(alice.id, 0.0))] == ["mine"]
    assert all(result(storage.tokens.liveTokens(a.id, 0.0)) == [] for a in jwts)


def test_purgeExpired(storage):
    """purgeExpired deletes exactly the expired tokens and counts them."""
    account = addAccount(storage, "alice")
    for i, expiresAt in enumerate([10.0, 20.0, 30.0, 40.0]):
        result(storage.tokens.addToken(token(f"h{i}", account.id, expiresAt)))
    assert result(storage.tokens.purgeExpired(20.0)) == 2
    assert [t.tokenHash for t in result(storage.tokens.liveTokens(account.id, 0.0))] == ["h2", "h3"]
    assert result(storage.tokens.purgeExpired(20.0)) == 0


# -- offline messages ---------------------------------------------------------------


def test_storeAndFetchOffline(storage):
    """Offline messages come back in the order stored, and fetching does not delete them."""
    ids = [result(storage.offline.storeOffline("bob", f"<message id='{i}'/>", 10.0 + i, 100))
           for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    messages = result(storage.offline.fetchOffline("bob"))
    assert messages == [OfflineMessage(id=ids[i], localpart="bob", stanza=f"<message id='{i}'/>",
                                       stamp=10.0 + i) for i in range(5)]
    assert result(storage.offline.fetchOffline("bob")) == messages
    assert result(storage.offline.countOffline("bob")) == 5
    assert result(storage.offline.fetchOffline("alice")) == []
    assert result(storage.offline.countOffline("alice")) == 0


def test_offlineQuota(storage):
    """storeOffline fails with QuotaExceeded once a user holds limit messages; others are unaffected."""
    for i in range(3):
        result(storage.offline.storeOffline("bob", f"<m{i}/>", 1.0, 3))
    failure(storage.offline.storeOffline("bob", "<m3/>", 1.0, 3), QuotaExceeded)
    assert result(storage.offline.countOffline("bob")) == 3
    result(storage.offline.storeOffline("alice", "<m/>", 1.0, 3))
    failure(storage.offline.storeOffline("carol", "<m/>", 1.0, 0), QuotaExceeded)
    messages = result(storage.offline.fetchOffline("bob"))
    result(storage.offline.deleteOffline("bob", [messages[0].id]))
    result(storage.offline.storeOffline("bob", "<m3/>", 1.0, 3))


def test_storeOfflineMany(storage):
    """storeOfflineMany stores each entry as storeOffline would; the full queues are named, the others stored."""
    result(storage.offline.storeOffline("bob", "<old/>", 1.0, 1))
    refused = result(storage.offline.storeOfflineMany(
        [("alice", "<a/>"), ("bob", "<b/>"), ("carol", "<c/>")], 5.0, 1))
    assert refused == ["bob"]
    assert [(m.stanza, m.stamp) for m in result(storage.offline.fetchOffline("alice"))] == [("<a/>", 5.0)]
    assert [m.stanza for m in result(storage.offline.fetchOffline("bob"))] == ["<old/>"]
    assert result(storage.offline.countOffline("carol")) == 1
    assert result(storage.offline.storeOfflineMany([], 5.0, 1)) == []


def test_offlineNoLimit(storage):
    """A limit of None stores without a quota."""
    for _ in range(20):
        result(storage.offline.storeOffline("bob", "<m/>", 1.0, None))
    assert result(storage.offline.countOffline("bob")) == 20


def test_deleteOffline(storage):
    """deleteOffline removes only the given ids of that user and counts them."""
    bob = [result(storage.offline.storeOffline("bob", f"<b{i}/>", 1.0, 10)) for i in range(4)]
    alice = result(storage.offline.storeOffline("alice", "<a/>", 1.0, 10))
    assert result(storage.offline.deleteOffline("bob", [bob[0], bob[2], alice, 9999])) == 2
    assert [m.id for m in result(storage.offline.fetchOffline("bob"))] == [bob[1], bob[3]]
    assert result(storage.offline.countOffline("alice")) == 1
    assert result(storage.offline.deleteOffline("bob", [])) == 0


def test_deleteOfflineMany(storage):
    """deleteOffline handles more ids than fit in one statement."""
    ids = [result(storage.offline.storeOffline("bob", "<m/>", 1.0, None)) for _ in range(1203)]
    assert result(storage.offline.deleteOffline("bob", iter(ids[:1202]))) == 1202
    assert [m.id for m in result(storage.offline.fetchOffline("bob"))] == [ids[-1]]


def test_offlineStanzaUnicode(storage):
    """Stanzas are stored as exact text, non-ASCII included."""
    stanza = "<message><body>Grüße 👋 &amp; \u202e</body></message>"
    result(storage.offline.storeOffline("bob", stanza, 1.5, 10))
    assert result(storage.offline.fetchOffline("bob"))[0].stanza == stanza


# -- roster -------------------------------------------------------------------------


def test_rosterItemDefaults(storage):
    """A bare RosterItem round-trips with its defaults."""
    result(storage.roster.setRosterItem("alice", RosterItem("bob@localhost")))
    item = result(storage.roster.getRosterItem("alice", "bob@localhost"))
    assert item == RosterItem(jid="bob@localhost", name=None, groups=[], subscription="none",
                              ask=None, pendingIn=False, hidden=False)


def test_setRosterItemReplaces(storage):
    """Setting an item for the same JID replaces every field."""
    full = RosterItem("bob@localhost", "Bob", ["Friends", "Work"], "both", "subscribe", True, True)
    result(storage.roster.setRosterItem("alice", full))
    assert result(storage.roster.getRosterItem("alice", "bob@localhost")) == full
    result(storage.roster.setRosterItem("alice", RosterItem("bob@localhost", subscription="to")))
    assert result(storage.roster.getRoster("alice")) == [RosterItem("bob@localhost", subscription="to")]


def test_getRoster(storage):
    """getRoster returns one user's items ordered by JID."""
    for contact in ["carol@localhost", "bob@localhost", "dave@example.org"]:
        result(storage.roster.setRosterItem("alice", RosterItem(contact)))
    result(storage.roster.setRosterItem("bob", RosterItem("alice@localhost")))
    assert [i.jid for i in result(storage.roster.getRoster("alice"))] == [
        "bob@localhost", "carol@localhost", "dave@example.org"]
    assert [i.jid for i in result(storage.roster.getRoster("bob"))] == ["alice@localhost"]
    assert result(storage.roster.getRoster("nobody")) == []
    assert result(storage.roster.getRosterItem("bob", "carol@localhost")) is None


def test_removeRosterItem(storage):
    """removeRosterItem removes one item and says whether it existed (a new roster version, or None)."""
    result(storage.roster.setRosterItem("alice", RosterItem("bob@localhost")))
    result(storage.roster.setRosterItem("alice", RosterItem("carol@localhost")))
    assert result(storage.roster.removeRosterItem("alice", "bob@localhost"))
    assert result(storage.roster.removeRosterItem("alice", "bob@localhost")) is None
    assert [i.jid for i in result(storage.roster.getRoster("alice"))] == ["carol@localhost"]


def test_setRosterItemInvalid(storage):
    """An unknown subscription or ask value is refused with ValueError."""
    failure(storage.roster.setRosterItem("alice", RosterItem("b@x", subscription="remove")), ValueError)
    failure(storage.roster.setRosterItem("alice", RosterItem("b@x", ask="unsubscribe")), ValueError)
    assert result(storage.roster.getRoster("alice")) == []


# -- last activity ----------------------------------------------------------------


def test_lastActivity(storage):
    """Last activity is stored per user, overwritten, and None when never set."""
    assert result(storage.lastActivity.getLastActivity("alice")) is None
    result(storage.lastActivity.setLastActivity("alice", 100.5, "gone fishing"))
    assert result(storage.lastActivity.getLastActivity("alice")) == (100.5, "gone fishing")
    result(storage.lastActivity.setLastActivity("alice", 200.0, None))
    assert result(storage.lastActivity.getLastActivity("alice")) == (200.0, None)
    assert result(storage.lastActivity.getLastActivity("bob")) is None


# -- round trips --------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=10)
ROUND_TRIP = settings(max_examples=60, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


@ROUND_TRIP
@given(localpart=names, login=st.none() | names, email=st.none() | names,
       externalId=st.none() | names, credentials=st.none() | st.dictionaries(text, json, max_size=4),
       profile=st.dictionaries(text, json, max_size=4))
def test_accountRoundTrip(backend, localpart, login, email, externalId, credentials, profile):
    """Any account, unicode and nested JSON included, reads back as created."""
    storage = openBackend(backend)
    try:
        created = result(storage.accounts.createAccount(
            localpart, credentials, login=login, email=email, externalId=externalId, profile=profile))
        assert (created.localpart, created.login, created.email, created.externalId) == (
            localpart, login, email, externalId)
        assert (created.credentials, created.profile) == (credentials, profile)
        assert result(storage.accounts.getAccountByLocalpart(localpart)) == created
        assert result(storage.accounts.getAccount(created.id)) == created
        if login is not None:
            assert result(storage.accounts.getAccountByLogin(login)) == created
    finally:
        result(storage.stop())


@ROUND_TRIP
@given(items=st.dictionaries(
    names,
    st.tuples(st.none() | text, st.lists(names, max_size=5),
              st.sampled_from(["none", "to", "from", "both"]), st.sampled_from([None, "subscribe"]),
              st.booleans(), st.booleans()),
    max_size=8), owner=names)
def test_rosterRoundTrip(backend, items, owner):
    """Any roster, unicode names and groups included, reads back as stored, ordered by JID."""
    storage = openBackend(backend)
    try:
        expected = []
        for jid, fields in items.items():
            item = RosterItem(jid, *fields)
            result(storage.roster.setRosterItem(owner, item))
            expected.append(item)
            assert result(storage.roster.getRosterItem(owner, jid)) == item
        roster = result(storage.roster.getRoster(owner))
        assert sorted(roster, key=lambda i: i.jid) == sorted(expected, key=lambda i: i.jid)
        assert [i.jid for i in roster] == sorted(i.jid for i in roster)
    finally:
        result(storage.stop())


# -- account finders ----------------------------------------------------------------


def test_createAccountFillsIdPlaceholder(storage):
    """A localpart with {id} gets the allocated id, as REST users' '{id}-{appId}' localparts do."""
    first = addAccount(storage, "{id}-7", login="one")
    second = addAccount(storage, "{id}-7", login="two")
    assert (first.localpart, second.localpart) == (f"{first.id}-7", f"{second.id}-7")
    assert result(storage.accounts.getAccountByLocalpart(f"{second.id}-7")) == second
    assert addAccount(storage, "plain").localpart == "plain"


def test_createAccountIdPlaceholderCollision(storage):
    """A filled-in localpart that is already taken fails with AlreadyExists and creates nothing."""
    first = addAccount(storage, "a")
    addAccount(storage, f"{first.id + 2}-7")
    failure(storage.accounts.createAccount("{id}-7", None), AlreadyExists)
    assert result(storage.accounts.countAccounts()) == 2


def test_accountLookupsByEmailExternalIdAndIds(storage):
    """Accounts are found by e-mail, external id and in bulk by ids."""
    alice = addAccount(storage, "alice", email="a@x", externalId="e1")
    bob = addAccount(storage, "bob")
    assert result(storage.accounts.getAccountByEmail("a@x")) == alice
    assert result(storage.accounts.getAccountByExternalId("e1")) == alice
    assert result(storage.accounts.getAccountByEmail("b@x")) is None
    assert result(storage.accounts.getAccountByExternalId("e2")) is None
    assert result(storage.accounts.getAccounts([bob.id, alice.id, 99])) == {alice.id: alice, bob.id: bob}
    assert result(storage.accounts.getAccounts([])) == {}


def userQuery(*filters, **kwargs):
    query = Query(**kwargs)
    for f in filters:
        query.where(*f)
    return query


def test_findAccounts(storage):
    """findAccounts filters on columns and profile keys, sorts, pages and counts."""
    people = [("ann", "Ann Lee", ["a", "b"], "+1"), ("bob", "Bob Stone", ["b"], "+2"),
              ("cid", "Cid Lee", [], None), ("dan", "Dan", ["c"], "+3")]
    accounts = [addAccount(storage, lp, login=f"l-{lp}", email=f"{lp}@x",
                           profile={"full_name": name, "user_tags": tags, "phone": phone})
                for lp, name, tags, phone in people]
    ids = [a.id for a in accounts]

    def find(*filters, **kwargs):
        return [a.localpart for a in result(storage.accounts.findAccounts(userQuery(*filters, **kwargs)))]

    assert find() == ["ann", "bob", "cid", "dan"]
    assert find(("id", "in", [ids[3], ids[1]])) == ["bob", "dan"]
    assert find(("login", "start_with", "l-b")) == ["bob"]
    assert find(("full_name", "ctn", "Lee")) == ["ann", "cid"]
    assert find(("user_tags", "eq", "b")) == ["ann", "bob"]
    assert find(("user_tags", "all", ["a", "b"])) == ["ann"]
    assert find(("user_tags", "in", ["c", "a"])) == ["ann", "dan"]
    assert find(("user_tags", "nin", ["b"])) == ["cid", "dan"]
    assert find(("phone", "eq", None)) == ["cid"]
    assert find(("phone", "ne", "+1")) == ["bob", "cid", "dan"]
    assert find(("email", "or", ["dan@x"]), ("full_name", "or", ["Ann Lee"])) == ["ann", "dan"]
    assert find(("id", "gt", ids[0]), ("id", "lte", ids[2])) == ["bob", "cid"]
    assert find(("nickname", "eq", "x")) == []
    assert find(sort="full_name", descending=True) == ["dan", "cid", "bob", "ann"]
    assert find(sort="login", limit=2, skip=1) == ["bob", "cid"]
    assert result(storage.accounts.countAccounts(userQuery(("full_name", "ctn", "Lee"), limit=1))) == 2


def test_findAccountsInvalidQuery(storage):
    """Unknown operators, bad values and unsafe field names fail with InvalidQuery."""
    for query in [userQuery(("login", "like", "x")), userQuery(("login", "in", "x")),
                  userQuery(("a.b", "eq", 1)), userQuery(("$where", "eq", 1)),
                  userQuery(("login", "gt", None)), userQuery(("login", "eq", {"$ne": 1})),
                  userQuery(limit=-1), userQuery(sort="user_tags.x")]:
        failure(storage.accounts.findAccounts(query), InvalidQuery)
    failure(storage.accounts.countAccounts(userQuery(("x", "in", [[1]]))), InvalidQuery)


# -- query semantics against a reference model ------------------------------------------


def reference(value, op, operand):
    """Whether a stored value (a scalar, a list, or missing: Ellipsis) satisfies one filter."""
    values = [] if value is ... else (value if isinstance(value, list) else [value])

    def same(a, b):
        return type(a) is type(b) and a == b

    def compare(a, b):
        if isinstance(a, str) != isinstance(b, str):
            return None
        return (a > b) - (a < b)

    if op == "eq":
        if operand is None:
            return value is ... or value is None
        return any(same(v, operand) for v in values)
    if op == "ne":
        if operand is None:
            return not (value is ... or value is None)
        return not any(same(v, operand) for v in values)
    if op in ("lt", "lte", "gt", "gte"):
        wanted = {"lt": (-1,), "lte": (-1, 0), "gt": (1,), "gte": (1, 0)}[op]
        return any(v is not None and compare(v, operand) in wanted for v in values)
    if op in ("in", "or"):
        return any(same(v, o) for v in values for o in operand)
    if op == "nin":
        return not any(same(v, o) for v in values for o in operand)
    if op == "all":
        return bool(operand) and all(any(same(v, o) for v in values) for o in operand)
    if op == "ctn":
        return any(isinstance(v, str) and operand in v for v in values)
    return any(isinstance(v, str) and v.startswith(operand) for v in values)


small = st.text("abAB", max_size=3)
queryValue = st.integers(-3, 3) | small
profileValue = st.none() | queryValue | st.lists(queryValue, max_size=3)
queryFilter = st.one_of(
    st.tuples(st.sampled_from(["k", "n"]), st.sampled_from(["eq", "ne"]), st.none() | queryValue),
    st.tuples(st.sampled_from(["k", "n"]), st.sampled_from(["lt", "lte", "gt", "gte"]), queryValue),
    st.tuples(st.sampled_from(["k", "n"]), st.sampled_from(["in", "nin", "all", "or"]),
              st.lists(queryValue, max_size=3)),
    st.tuples(st.sampled_from(["k", "n"]), st.sampled_from(["ctn", "start_with"]), small))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(profiles=st.lists(st.fixed_dictionaries({}, optional={"k": profileValue, "n": profileValue}),
                         max_size=6),
       filters=st.lists(queryFilter, max_size=3))
def test_querySemantics(backend, profiles, filters):
    """Any combination of operators selects exactly what the documented semantics select."""
    storage = openBackend(backend)
    try:
        for i, profile in enumerate(profiles):
            addAccount(storage, f"u{i}", profile=profile)
        expected = []
        for i, profile in enumerate(profiles):
            plain = [f for f in filters if f[1] != "or"]
            either = [f for f in filters if f[1] == "or"]
            if all(reference(profile.get(k, ...), op, v) for k, op, v in plain) and (
                    not either or any(reference(profile.get(k, ...), op, v) for k, op, v in either)):
                expected.append(f"u{i}")
        found = result(storage.accounts.findAccounts(userQuery(*filters)))
        assert [a.localpart for a in found] == expected
        assert result(storage.accounts.countAccounts(userQuery(*filters))) == len(expected)
    finally:
        result(storage.stop())


# -- dialogs ----------------------------------------------------------------------


def group(storage, owner=1, occupants=(2, 3), **kwargs):
    return result(storage.dialogs.createDialog(DIALOG_GROUP, owner, occupants, **kwargs))


def private(storage, a=1, b=2):
    return result(storage.dialogs.createDialog(DIALOG_PRIVATE, a, [b]))


def send(storage, dialog, sender, body="hi", **kwargs):
    return result(storage.messages.createMessage(dialog.id, sender, body, **kwargs))


def test_createDialog(storage):
    """A new dialog has an ObjectId-like id, sorted occupants including the owner, and every field."""
    dialog = group(storage, owner=5, occupants=[9, 2, 9], adminIds=[9], name="Team", photo="p.png",
                   description="d", extensions={"topic": "x"}, permissions={"allow_preview": 1})
    assert isinstance(dialog, Dialog) and isObjectId(dialog.id)
    assert (dialog.type, dialog.ownerId, dialog.occupantIds, dialog.adminIds) == (
        DIALOG_GROUP, 5, [2, 5, 9], [9])
    assert (dialog.name, dialog.photo, dialog.description) == ("Team", "p.png", "d")
    assert dialog.extensions == {"topic": "x"}
    assert dialog.permissions == {"allow_preview": True}
    assert dialog.pinnedMessageIds == []
    assert dialog.createdAt == dialog.updatedAt > 0
    assert (dialog.lastMessage, dialog.lastMessageDateSent, dialog.lastMessageId,
            dialog.lastMessageUserId) == (None, None, None, None)
    assert result(storage.dialogs.getDialog(dialog.id)) == dialog
    assert result(storage.dialogs.getDialog("0" * 24)) is None
    other = group(storage)
    assert result(storage.dialogs.getDialogs([other.id, dialog.id, "f" * 24])) == {
        dialog.id: dialog, other.id: other}


def test_createDialogErrors(storage):
    """Unknown types, bad ids, bad extensions and a forced id that is taken are refused."""
    failure(storage.dialogs.createDialog(7, 1, [2]), ValueError)
    failure(storage.dialogs.createDialog(DIALOG_GROUP, 1, ["2"]), TypeError)
    failure(storage.dialogs.createDialog(DIALOG_GROUP, 1, [2], dialogId="xyz"), ValueError)
    failure(storage.dialogs.createDialog(DIALOG_GROUP, 1, [2], extensions={"a.b": "x"}), ValueError)
    failure(storage.dialogs.createDialog(DIALOG_GROUP, 1, [2], extensions={"a": 1}), ValueError)
    failure(storage.dialogs.createDialog(DIALOG_GROUP, 1, [2], permissions={"x": 1}), ValueError)
    dialog = group(storage, dialogId="a" * 24)
    assert dialog.id == "a" * 24
    failure(storage.dialogs.createDialog(DIALOG_GROUP, 1, [2], dialogId="a" * 24), AlreadyExists)


def test_privateDialogs(storage):
    """A private dialog has exactly two occupants, is unique per pair, and is found in either order."""
    dialog = private(storage, 1, 2)
    assert dialog.occupantIds == [1, 2]
    assert result(storage.dialogs.findPrivateDialog(2, 1)) == dialog
    assert result(storage.dialogs.findPrivateDialog(1, 2)) == dialog
    assert result(storage.dialogs.findPrivateDialog(1, 3)) is None
    assert result(storage.dialogs.findPrivateDialog(1, 1)) is None
    failure(storage.dialogs.createDialog(DIALOG_PRIVATE, 2, [1]), AlreadyExists)
    failure(storage.dialogs.createDialog(DIALOG_PRIVATE, 1, [2, 3]), ValueError)
    failure(storage.dialogs.createDialog(DIALOG_PRIVATE, 1, [1]), ValueError)
    failure(storage.dialogs.updateDialog(dialog.id, push={"occupants_ids": [3]}), ValueError)
    assert private(storage, 3, 1).occupantIds == [1, 3]


def test_updateDialog(storage):
    """updateDialog sets fields, pushes and pulls list fields atomically and bumps updatedAt."""
    dialog = group(storage, owner=1, occupants=[2, 3])
    updated = result(storage.dialogs.updateDialog(
        dialog.id, name="New", photo=None, extensions={"k": "v"}, permissions={"allow_preview": False},
        push={"occupants_ids": [4, 2], "admins_ids": [2], "pinned_messages_ids": ["b" * 24, "a" * 24]},
        pull={"occupants_ids": [3]}))
    assert (updated.name, updated.photo, updated.extensions) == ("New", None, {"k": "v"})
    assert updated.permissions == {"allow_preview": False}
    assert (updated.occupantIds, updated.adminIds) == ([1, 2, 4], [2])
    assert updated.pinnedMessageIds == ["b" * 24, "a" * 24]
    assert updated.updatedAt >= dialog.updatedAt and updated.createdAt == dialog.createdAt
    again = result(storage.dialogs.updateDialog(
        dialog.id, push={"pinned_messages_ids": ["c" * 24, "b" * 24]},
        pull={"pinned_messages_ids": ["a" * 24], "admins_ids": [2, 7]}))
    assert again.pinnedMessageIds == ["b" * 24, "c" * 24]
    assert again.adminIds == []
    assert result(storage.dialogs.getDialog(dialog.id)) == again
    assert [d.id for d in result(storage.dialogs.listDialogs(3))] == []
    assert [d.id for d in result(storage.dialogs.listDialogs(4))] == [dialog.id]


def test_updateDialogErrors(storage):
    """updateDialog: NotFound for an unknown dialog, ValueError for other fields."""
    dialog = group(storage)
    failure(storage.dialogs.updateDialog("0" * 24, name="x"), NotFound)
    failure(storage.dialogs.updateDialog(dialog.id, type=3), ValueError)
    failure(storage.dialogs.updateDialog(dialog.id, push={"user_id": [1]}), ValueError)
    failure(storage.dialogs.updateDialog(dialog.id, push={"occupants_ids": ["x"]}), TypeError)
    assert result(storage.dialogs.getDialog(dialog.id)) == dialog


def test_listDialogs(storage, clock):
    """A user's dialogs filter, sort by last message, page and count; others' dialogs never show."""
    a = group(storage, owner=1, occupants=[2], name="alpha", extensions={"team": "red"})
    clock.advance(10)
    b = private(storage, 1, 3)
    clock.advance(10)
    c = group(storage, owner=2, occupants=[4], name="gamma")
    send(storage, b, 3, dateSent=100)
    send(storage, a, 2, dateSent=200)

    def listed(userId, *filters, **kwargs):
        return [d.id for d in result(storage.dialogs.listDialogs(userId, userQuery(*filters, **kwargs)))]

    assert listed(1) == [a.id, b.id]
    assert listed(2) == [a.id, c.id]
    assert listed(1, sort="last_message_date_sent", descending=True) == [a.id, b.id]
    assert listed(1, sort="last_message_date_sent") == [b.id, a.id]
    assert listed(1, ("type", "eq", DIALOG_PRIVATE)) == [b.id]
    assert listed(1, ("type", "in", [DIALOG_GROUP, DIALOG_PUBLIC])) == [a.id]
    assert listed(1, ("updated_at", "gt", b.createdAt + 5)) == [a.id, b.id]
    assert listed(2, ("updated_at", "gt", a.createdAt + 15)) == [a.id, c.id]
    assert listed(2, ("created_at", "gt", a.createdAt + 15)) == [c.id]
    assert listed(1, ("occupants_ids", "all", [1, 3])) == [b.id]
    assert listed(1, ("extensions.team", "eq", "red")) == [a.id]
    assert listed(1, ("name", "start_with", "al")) == [a.id]
    assert listed(1, ("_id", "ne", a.id)) == [b.id]
    assert listed(1, ("last_message_user_id", "eq", 3)) == [b.id]
    assert listed(1, limit=1, skip=1) == [b.id]
    assert listed(None) == [a.id, b.id, c.id]
    assert listed(9) == []
    assert result(storage.dialogs.countDialogs(1, userQuery(limit=1))) == 2
    assert result(storage.dialogs.countDialogs(None)) == 3
    failure(storage.dialogs.listDialogs(1, userQuery(("nope", "eq", 1))), InvalidQuery)
    failure(storage.dialogs.listDialogs(1, userQuery(sort="occupants_ids")), InvalidQuery)


def test_hiddenDialogs(storage):
    """A hidden dialog leaves one user's list until it is shown again or a new message arrives."""
    dialog = private(storage, 1, 2)
    result(storage.dialogs.setHidden(dialog.id, 1))
    assert result(storage.dialogs.listDialogs(1)) == []
    assert result(storage.dialogs.countDialogs(1)) == 0
    assert len(result(storage.dialogs.listDialogs(2))) == 1
    result(storage.dialogs.setHidden(dialog.id, 1, False))
    assert len(result(storage.dialogs.listDialogs(1))) == 1
    result(storage.dialogs.setHidden(dialog.id, 1))
    send(storage, dialog, 2)
    assert [d.id for d in result(storage.dialogs.listDialogs(1))] == [dialog.id]
    failure(storage.dialogs.setHidden("0" * 24, 1), NotFound)


def test_publicDialogSubscriptions(storage):
    """Public dialogs take subscribers, listed in order, and show in their dialog lists."""
    public = result(storage.dialogs.createDialog(DIALOG_PUBLIC, 1, [], name="Lobby"))
    assert public.occupantIds == []
    assert result(storage.dialogs.subscribe(public.id, 5)) is True
    assert result(storage.dialogs.subscribe(public.id, 5)) is False
    assert result(storage.dialogs.subscribe(public.id, 3)) is True
    assert result(storage.dialogs.subscribe(public.id, 7)) is True
    assert result(storage.dialogs.listSubscribers(public.id)) == [5, 3, 7]
    assert result(storage.dialogs.listSubscribers(public.id, skip=1, limit=1)) == [3]
    assert result(storage.dialogs.countSubscribers(public.id)) == 3
    assert [d.id for d in result(storage.dialogs.listDialogs(3))] == [public.id]
    assert result(storage.dialogs.unsubscribe(public.id, 3)) is True
    assert result(storage.dialogs.unsubscribe(public.id, 3)) is False
    assert result(storage.dialogs.listDialogs(3)) == []
    assert result(storage.dialogs.listSubscribers(public.id)) == [5, 7]
    assert result(storage.dialogs.subscribe(public.id, 3)) is True
    assert result(storage.dialogs.listSubscribers(public.id)) == [5, 7, 3]
    failure(storage.dialogs.subscribe(group(storage).id, 5), ValueError)
    failure(storage.dialogs.subscribe("0" * 24, 5), NotFound)


def test_notificationSettings(storage):
    """Notifications default to enabled and are set per user and dialog."""
    dialog = group(storage)
    assert result(storage.dialogs.getNotifications(dialog.id, 2)) is True
    result(storage.dialogs.setNotifications(dialog.id, 2, False))
    assert result(storage.dialogs.getNotifications(dialog.id, 2)) is False
    assert result(storage.dialogs.getNotifications(dialog.id, 3)) is True
    result(storage.dialogs.setNotifications(dialog.id, 2, 1))
    assert result(storage.dialogs.getNotifications(dialog.id, 2)) is True
    failure(storage.dialogs.setNotifications("0" * 24, 2, False), NotFound)


def test_deleteDialog(storage):
    """deleteDialog removes the dialog with its messages and per-user state."""
    dialog = group(storage)
    other = group(storage)
    message = send(storage, dialog, 2)
    kept = send(storage, other, 2)
    result(storage.messages.markRead(dialog.id, 3))
    assert result(storage.dialogs.deleteDialog(dialog.id)) is True
    assert result(storage.dialogs.getDialog(dialog.id)) is None
    assert result(storage.messages.getMessage(message.id)) is None
    assert [d.id for d in result(storage.dialogs.listDialogs(3))] == [other.id]
    assert result(storage.messages.getMessage(kept.id)) == kept
    assert result(storage.dialogs.deleteDialog(dialog.id)) is False


# -- messages ---------------------------------------------------------------------


def test_createMessage(storage, clock):
    """A message keeps its fields, gets an increasing order key, and becomes the dialog's last message."""
    dialog = group(storage)
    first = send(storage, dialog, 2, "hello", attachments=[{"type": "image", "uid": "u1"}],
                 custom={"save_to_history": 1, "markable": "1"})
    assert isinstance(first, Message) and isObjectId(first.id)
    assert (first.dialogId, first.senderId, first.body, first.recipientId) == (dialog.id, 2, "hello", None)
    assert first.dateSent == int(clock.seconds())
    assert first.attachments == [{"type": "image", "uid": "u1"}]
    assert first.custom == {"save_to_history": 1, "markable": "1"}
    assert (first.edited, first.reactions) == (False, {})
    assert (first.readIds, first.deliveredIds) == ([2], [2])
    clock.advance(5)
    second = send(storage, dialog, 3, "again", messageId="c" * 24, dateSent=42, recipientId=9)
    assert (second.id, second.dateSent, second.recipientId) == ("c" * 24, 42, 9)
    assert second.order > first.order
    updated = result(storage.dialogs.getDialog(dialog.id))
    assert (updated.lastMessage, updated.lastMessageDateSent, updated.lastMessageId,
            updated.lastMessageUserId) == ("again", 42, "c" * 24, 3)
    assert updated.updatedAt == clock.seconds()
    assert result(storage.messages.getMessage(first.id)) == first
    assert result(storage.messages.getMessage("0" * 24)) is None


def test_messageStanzaKeptVerbatim(storage):
    """Issue 16, XEP-0313 §4.1: a stock client's message XML is stored with the message and read back
    unchanged by getMessage and listMessages (also of several dialogs); other messages have none."""
    dialog = private(storage)
    xml = ("<message xmlns='jabber:client' to='bob@x' from='alice@x/r' type='chat' id='m1'>"
           "<encrypted xmlns='eu.siacs.conversations.axolotl'><payload>cA==</payload></encrypted></message>")
    kept = send(storage, dialog, 1, "Encrypted message", stanza=xml)
    plain = send(storage, dialog, 2, "sdk")
    assert (kept.stanza, plain.stanza) == (xml, None)
    assert result(storage.messages.getMessage(kept.id)).stanza == xml
    assert [m.stanza for m in result(storage.messages.listMessages(dialog.id, 1))] == [xml, None]
    assert [m.stanza for m in result(storage.messages.listMessages([dialog.id], 2))] == [xml, None]


def test_createMessageErrors(storage):
    """Unknown dialogs, taken or malformed ids and bad fields are refused."""
    dialog = group(storage)
    send(storage, dialog, 2, messageId="d" * 24)
    failure(storage.messages.createMessage(dialog.id, 2, "x", messageId="d" * 24), AlreadyExists)
    failure(storage.messages.createMessage(dialog.id, 2, "x", messageId="123"), ValueError)
    failure(storage.messages.createMessage("0" * 24, 2, "x"), NotFound)
    failure(storage.messages.createMessage(dialog.id, "2", "x"), TypeError)
    failure(storage.messages.createMessage(dialog.id, 2, "x", dateSent=1.5), TypeError)
    failure(storage.messages.createMessage(dialog.id, 2, "x", attachments=["a"]), ValueError)
    failure(storage.messages.createMessage(dialog.id, 2, "x", custom={"$set": 1}), ValueError)
    assert result(storage.messages.countMessages(dialog.id)) == 1


def test_orderKeysIncreaseAcrossDialogs(storage):
    """Order keys strictly increase across the whole store."""
    a, b = group(storage), group(storage)
    orders = [send(storage, (a, b)[i % 2], 2).order for i in range(6)]
    assert orders == sorted(orders) and len(set(orders)) == 6


def test_listMessages(storage):
    """listMessages filters on date_sent and fields, sorts both ways, pages and counts."""
    dialog = group(storage)
    other = group(storage)
    messages = [send(storage, dialog, 2 + i % 2, f"m{i}", dateSent=100 + i) for i in range(5)]
    send(storage, other, 2, dateSent=102)

    def listed(*filters, userId=None, **kwargs):
        return [m.body for m in result(storage.messages.listMessages(
            dialog.id, userId, userQuery(*filters, **kwargs)))]

    assert listed() == ["m0", "m1", "m2", "m3", "m4"]
    assert listed(sort="date_sent", descending=True, limit=2) == ["m4", "m3"]
    assert listed(sort="date_sent", descending=True, limit=2, skip=2) == ["m2", "m1"]
    assert listed(("date_sent", "gt", 101), ("date_sent", "lt", 104)) == ["m2", "m3"]
    assert listed(("sender_id", "eq", 3)) == ["m1", "m3"]
    assert listed(("_id", "in", [messages[4].id, messages[0].id])) == ["m0", "m4"]
    assert listed(("message", "ctn", "4")) == ["m4"]
    assert result(storage.messages.countMessages(dialog.id, None, userQuery(("date_sent", "gte", 103)))) == 2
    assert result(storage.messages.listMessages("0" * 24)) == []
    failure(storage.messages.listMessages(dialog.id, None, userQuery(("x.y", "eq", 1))), InvalidQuery)


def test_listMessagesSortsEqualDatesByOrder(storage):
    """Messages with the same date_sent keep their arrival order in both directions."""
    dialog = group(storage)
    ids = [send(storage, dialog, 2, dateSent=50).id for _ in range(3)]
    assert [m.id for m in result(storage.messages.listMessages(dialog.id, None, Query(sort="date_sent")))] == ids
    descending = result(storage.messages.listMessages(dialog.id, None, Query(sort="date_sent", descending=True)))
    assert [m.id for m in descending] == ids


def test_customFieldQuery(storage):
    """Custom message fields can be filtered on."""
    dialog = group(storage)
    send(storage, dialog, 2, "a", custom={"kind": "call"})
    send(storage, dialog, 2, "b")
    found = result(storage.messages.listMessages(dialog.id, None, userQuery(("kind", "eq", "call"))))
    assert [m.body for m in found] == ["a"]


def test_editMessage(storage):
    """Editing replaces the body, sets edited, and updates the dialog's last message when it is the last."""
    dialog = group(storage)
    first = send(storage, dialog, 2, "one", custom={"a": "1"}, attachments=[{"uid": "x"}])
    last = send(storage, dialog, 3, "two")
    edited = result(storage.messages.editMessage(first.id, "ONE"))
    assert (edited.body, edited.edited, edited.custom, edited.attachments) == (
        "ONE", True, {"a": "1"}, [{"uid": "x"}])
    assert result(storage.dialogs.getDialog(dialog.id)).lastMessage == "two"
    result(storage.messages.editMessage(last.id, "TWO", attachments=[], custom={"b": 2}))
    got = result(storage.messages.getMessage(last.id))
    assert (got.body, got.edited, got.attachments, got.custom) == ("TWO", True, [], {"b": 2})
    assert result(storage.dialogs.getDialog(dialog.id)).lastMessage == "TWO"
    failure(storage.messages.editMessage("0" * 24, "x"), NotFound)


def test_reactions(storage):
    """Reactions are added and removed per user; an emptied emoji disappears."""
    dialog = group(storage)
    message = send(storage, dialog, 2)
    assert result(storage.messages.react(message.id, 2, add="👍")) == {"👍": {2}}
    assert result(storage.messages.react(message.id, 3, add="👍")) == {"👍": {2, 3}}
    assert result(storage.messages.react(message.id, 3, add="🔥", remove="👍")) == {"👍": {2}, "🔥": {3}}
    assert result(storage.messages.react(message.id, 2, remove="👍")) == {"🔥": {3}}
    assert result(storage.messages.react(message.id, 2, remove="👎")) == {"🔥": {3}}
    assert result(storage.messages.getMessage(message.id)).reactions == {"🔥": {3}}
    failure(storage.messages.react("0" * 24, 2, add="👍"), NotFound)
    failure(storage.messages.react(message.id, 2, add=""), ValueError)


def test_readWatermarks(storage):
    """Marking a message read marks every earlier one read (and delivered) for that user only."""
    dialog = group(storage, owner=1, occupants=[2, 3])
    m = [send(storage, dialog, 1, f"m{i}") for i in range(4)]
    assert result(storage.messages.markRead(dialog.id, 2, m[1].id)) is True
    listed = result(storage.messages.listMessages(dialog.id))
    assert [x.readIds for x in listed] == [[1, 2], [1, 2], [1], [1]]
    assert [x.deliveredIds for x in listed] == [[1, 2], [1, 2], [1], [1]]
    assert result(storage.messages.markDelivered(dialog.id, 3, m[2].id)) is True
    assert result(storage.messages.markRead(dialog.id, 2, m[0].id)) is False
    listed = result(storage.messages.listMessages(dialog.id))
    assert [x.readIds for x in listed] == [[1, 2], [1, 2], [1], [1]]
    assert [x.deliveredIds for x in listed] == [[1, 2, 3], [1, 2, 3], [1, 3], [1]]
    assert result(storage.messages.markRead(dialog.id, 3)) is True
    assert result(storage.messages.getMessage(m[3].id)).readIds == [1, 3]
    assert result(storage.messages.markRead(dialog.id, 3)) is False
    assert result(storage.messages.markDelivered(dialog.id, 3, m[1].id)) is False
    other = group(storage)
    failure(storage.messages.markRead(other.id, 2, m[0].id), NotFound)
    failure(storage.messages.markRead("0" * 24, 2), NotFound)
    assert result(storage.messages.markRead(other.id, 2)) is False


def test_unreadCounts(storage):
    """Unread counts exclude own messages, read, deleted-for-me and cleared messages, never edits or reactions."""
    a = group(storage, owner=1, occupants=[2, 3])
    b = private(storage, 1, 2)
    c = group(storage, owner=3, occupants=[4])
    for i in range(3):
        send(storage, a, 2, f"a{i}")
    mine = send(storage, a, 1, "mine")
    last = send(storage, a, 3, "last")
    send(storage, b, 2)
    assert result(storage.messages.unreadCounts(1)) == {a.id: 4, b.id: 1}
    assert result(storage.messages.unreadCounts(1, [b.id, c.id, "0" * 24])) == {
        b.id: 1, c.id: 0, "0" * 24: 0}
    result(storage.messages.editMessage(mine.id, "edited"))
    result(storage.messages.react(last.id, 2, add="👍"))
    result(storage.messages.editMessage(last.id, "edited"))
    assert result(storage.messages.unreadCounts(1, [a.id])) == {a.id: 4}
    first = result(storage.messages.listMessages(a.id))[0]
    result(storage.messages.markRead(a.id, 1, first.id))
    assert result(storage.messages.unreadCounts(1, [a.id])) == {a.id: 3}
    result(storage.messages.deleteForUser([last.id], 1))
    assert result(storage.messages.unreadCounts(1, [a.id])) == {a.id: 2}
    assert result(storage.messages.unreadCounts(2, [a.id])) == {a.id: 2}
    result(storage.messages.clearHistory(a.id, 1))
    assert result(storage.messages.unreadCounts(1)) == {a.id: 0, b.id: 1}
    send(storage, a, 2)
    assert result(storage.messages.unreadCounts(1, [a.id])) == {a.id: 1}
    result(storage.messages.markRead(b.id, 1))
    assert result(storage.messages.unreadCounts(1, [b.id])) == {b.id: 0}
    assert result(storage.messages.unreadCounts(2)) == {a.id: 2, b.id: 0}


def test_deleteForUser(storage):
    """A message deleted for one user disappears from that user's view only."""
    dialog = group(storage)
    keep, gone = send(storage, dialog, 2, "keep"), send(storage, dialog, 2, "gone")
    assert result(storage.messages.deleteForUser([gone.id, "0" * 24], 3)) == [gone.id]
    assert [m.id for m in result(storage.messages.listMessages(dialog.id, 3))] == [keep.id]
    assert result(storage.messages.countMessages(dialog.id, 3)) == 1
    assert len(result(storage.messages.listMessages(dialog.id, 1))) == 2
    assert result(storage.messages.getMessage(gone.id, 3)) is None
    assert result(storage.messages.getMessage(gone.id, 1)) == gone
    assert result(storage.messages.deleteForUser([gone.id], 3)) == [gone.id]


def test_deleteMessages(storage):
    """Deleting for everyone removes messages and recomputes the dialog's last message."""
    dialog = group(storage)
    first = send(storage, dialog, 2, "first", dateSent=10)
    second = send(storage, dialog, 3, "second", dateSent=20)
    result(storage.messages.deleteForUser([second.id], 1))
    assert result(storage.messages.deleteMessages([second.id, "0" * 24])) == [second.id]
    assert result(storage.messages.getMessage(second.id)) is None
    updated = result(storage.dialogs.getDialog(dialog.id))
    assert (updated.lastMessage, updated.lastMessageDateSent, updated.lastMessageId,
            updated.lastMessageUserId) == ("first", 10, first.id, 2)
    assert result(storage.messages.deleteMessages([first.id])) == [first.id]
    updated = result(storage.dialogs.getDialog(dialog.id))
    assert (updated.lastMessage, updated.lastMessageId) == (None, None)
    assert result(storage.messages.deleteMessages([first.id])) == []


def test_clearHistory(storage):
    """Clearing history hides the dialog's current messages from one user; later ones show."""
    dialog = group(storage)
    old = send(storage, dialog, 2, "old")
    result(storage.messages.clearHistory(dialog.id, 3))
    new = send(storage, dialog, 2, "new")
    assert [m.id for m in result(storage.messages.listMessages(dialog.id, 3))] == [new.id]
    assert [m.id for m in result(storage.messages.listMessages(dialog.id, 1))] == [old.id, new.id]
    assert result(storage.messages.getMessage(old.id, 3)) is None
    failure(storage.messages.clearHistory("0" * 24, 3), NotFound)


def test_listMessagesOfSeveralDialogs(storage):
    """A listing over a list of dialog ids (the XEP-0313 account archive) is one query over all of
    them, in order, each dialog's cut-off and per-user deletions applied; counts agree."""
    a, b, c = group(storage), group(storage), group(storage)
    a1 = send(storage, a, 2, "a1")
    b1 = send(storage, b, 2, "b1")
    result(storage.messages.clearHistory(a.id, 3))
    send(storage, c, 2, "c1")
    a2 = send(storage, a, 2, "a2")
    b2 = send(storage, b, 2, "b2")
    result(storage.messages.deleteForUser([b2.id], 3))
    ids = [a.id, b.id]

    def listed(userId, query=None):
        return [m.id for m in result(storage.messages.listMessages(ids, userId, query))]

    assert listed(None, Query(sort="created_at")) == [a1.id, b1.id, a2.id, b2.id]
    assert listed(3) == [b1.id, a2.id]
    assert result(storage.messages.countMessages(ids, 3)) == 2
    assert result(storage.messages.listMessages([], 3)) == []


def test_searchMessages(storage):
    """Search finds a text in the bodies of the given dialogs, case-insensitively, newest first."""
    a, b, c = group(storage), group(storage), group(storage)
    send(storage, a, 2, "Meet at the STRASSE", dateSent=10)
    send(storage, b, 2, "straße party", dateSent=20)
    send(storage, c, 2, "strasse elsewhere", dateSent=30)
    hidden = send(storage, a, 2, "strasse hidden", dateSent=40)
    send(storage, a, 2, None, dateSent=50)

    def search(text, dialogs=(a, b), **kwargs):
        return [m.body for m in result(storage.messages.searchMessages([d.id for d in dialogs], text, **kwargs))]

    assert search("Straße") == ["strasse hidden", "straße party", "Meet at the STRASSE"]
    assert search("strasse", userId=3) == ["strasse hidden", "straße party", "Meet at the STRASSE"]
    result(storage.messages.deleteForUser([hidden.id], 3))
    assert search("strasse", userId=3) == ["straße party", "Meet at the STRASSE"]
    assert search("strasse", dateFrom=15, dateTo=40, limit=1) == ["strasse hidden"]
    assert search("party", dialogs=()) == []
    assert search("nothing") == []


# -- round trips and the unread invariant ------------------------------------------

keys = st.text("abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1, max_size=10)
attachment = st.dictionaries(text, json, max_size=4)


@ROUND_TRIP
@given(body=st.none() | text, dateSent=st.integers(0, 2**40), messageId=st.none() | st.text(
       "0123456789abcdef", min_size=24, max_size=24), attachments=st.lists(attachment, max_size=3),
       custom=st.dictionaries(keys, json, max_size=4), recipientId=st.none() | st.integers(1, 2**40))
def test_messageRoundTrip(backend, body, dateSent, messageId, attachments, custom, recipientId):
    """Any message, unicode and nested JSON included, reads back as created, listed or fetched."""
    storage = openBackend(backend)
    try:
        dialog = group(storage)
        created = send(storage, dialog, 2, body, dateSent=dateSent, messageId=messageId,
                       attachments=attachments, custom=custom, recipientId=recipientId)
        assert (created.body, created.dateSent, created.attachments, created.custom,
                created.recipientId) == (body, dateSent, attachments, custom, recipientId)
        if messageId is not None:
            assert created.id == messageId
        assert result(storage.messages.getMessage(created.id)) == created
        assert result(storage.messages.listMessages(dialog.id)) == [created]
        assert result(storage.dialogs.getDialog(dialog.id)).lastMessage == body
    finally:
        result(storage.stop())


@ROUND_TRIP
@given(type_=st.sampled_from([1, 2, 4]), owner=st.integers(1, 2**40),
       occupants=st.lists(st.integers(1, 2**40), max_size=5), admins=st.lists(st.integers(1, 50), max_size=3),
       name=st.none() | text, photo=st.none() | text, description=st.none() | text,
       extensions=st.dictionaries(keys, text, max_size=4), preview=st.none() | st.booleans())
def test_dialogRoundTrip(backend, type_, owner, occupants, admins, name, photo, description,
                         extensions, preview):
    """Any dialog reads back as created, by id and in its occupants' lists."""
    storage = openBackend(backend)
    try:
        permissions = None if preview is None else {"allow_preview": preview}
        created = result(storage.dialogs.createDialog(
            type_, owner, occupants, admins, name=name, photo=photo, description=description,
            extensions=extensions, permissions=permissions))
        expected = set(occupants) | ({owner} if type_ != DIALOG_PUBLIC else set())
        assert created.occupantIds == sorted(expected)
        assert created.adminIds == sorted(set(admins))
        assert (created.name, created.photo, created.description, created.extensions) == (
            name, photo, description, extensions)
        assert created.permissions == (permissions or {})
        assert result(storage.dialogs.getDialog(created.id)) == created
        for user in expected:
            assert result(storage.dialogs.listDialogs(user)) == [created]
    finally:
        result(storage.stop())


USERS = (1, 2, 3)
action = st.one_of(
    st.tuples(st.just("send"), st.sampled_from([0, 1]), st.sampled_from(USERS)),
    st.tuples(st.just("read"), st.sampled_from([0, 1]), st.sampled_from(USERS), st.integers(0, 30)),
    st.tuples(st.just("readAll"), st.sampled_from([0, 1]), st.sampled_from(USERS)),
    st.tuples(st.just("edit"), st.integers(0, 30)),
    st.tuples(st.just("react"), st.integers(0, 30), st.sampled_from(USERS)),
    st.tuples(st.just("deleteForMe"), st.integers(0, 30), st.sampled_from(USERS)),
    st.tuples(st.just("delete"), st.integers(0, 30)),
    st.tuples(st.just("clear"), st.sampled_from([0, 1]), st.sampled_from(USERS)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(action, max_size=30))
def test_unreadInvariant(backend, actions):
    """After any sequence of sends, reads, edits, reactions and deletes, unread counts match a simple model."""
    storage = openBackend(backend)
    try:
        dialogs = [group(storage, owner=1, occupants=[2, 3]), group(storage, owner=2, occupants=[1, 3])]
        sent = []  # the model: [dialog index, sender, id, deleted-for-everyone]
        readUpTo = {}  # (dialog, user) -> index in `sent` of the newest message read
        hiddenFor = set()  # (message index, user)
        clearedUpTo = {}
        for step in actions:
            kind = step[0]
            if kind == "send":
                message = send(storage, dialogs[step[1]], step[2], "x")
                sent.append([step[1], step[2], message.id, False])
            elif kind == "read" or kind == "readAll":
                d, user = step[1], step[2]
                alive = [i for i, m in enumerate(sent) if m[0] == d and not m[3]]
                if not alive:
                    continue
                target = alive[-1] if kind == "readAll" else alive[step[3] % len(alive)]
                messageId = None if kind == "readAll" else sent[target][2]
                result(storage.messages.markRead(dialogs[d].id, user, messageId))
                readUpTo[(d, user)] = max(readUpTo.get((d, user), -1), target)
            elif kind == "clear":
                d, user = step[1], step[2]
                result(storage.messages.clearHistory(dialogs[d].id, user))
                clearedUpTo[(d, user)] = len(sent) - 1
            elif sent:
                i = step[1] % len(sent)
                if sent[i][3]:
                    continue
                if kind == "edit":
                    result(storage.messages.editMessage(sent[i][2], "edited"))
                elif kind == "react":
                    result(storage.messages.react(sent[i][2], step[2], add="👍"))
                elif kind == "deleteForMe":
                    result(storage.messages.deleteForUser([sent[i][2]], step[2]))
                    hiddenFor.add((i, step[2]))
                else:
                    result(storage.messages.deleteMessages([sent[i][2]]))
                    sent[i][3] = True
        for user in USERS:
            expected = {}
            for d, dialog in enumerate(dialogs):
                cut = max(readUpTo.get((d, user), -1), clearedUpTo.get((d, user), -1))
                expected[dialog.id] = sum(
                    1 for i, (md, sender, _, deleted) in enumerate(sent)
                    if md == d and sender != user and not deleted and i > cut
                    and (i, user) not in hiddenFor)
            assert result(storage.messages.unreadCounts(user)) == expected
    finally:
        result(storage.stop())


# -- blobs ------------------------------------------------------------------------


def test_blobs(storage):
    """Blob metadata is created incomplete, completed with its size, updated, listed and deleted."""
    blob = result(storage.blobs.createBlob(7, "a.txt", "text/plain", public=False))
    assert isinstance(blob, Blob)
    assert (blob.ownerId, blob.name, blob.contentType, blob.public, blob.completed, blob.size) == (
        7, "a.txt", "text/plain", False, False, None)
    assert len(blob.uid) == 32 and int(blob.uid, 16) >= 0
    other = result(storage.blobs.createBlob(7, None, None, public=True))
    assert other.id > blob.id and other.uid != blob.uid and other.public
    result(storage.blobs.createBlob(8, "b", "image/png"))
    done = result(storage.blobs.completeBlob(blob.id, 123))
    assert (done.size, done.completed) == (123, True)
    assert result(storage.blobs.getBlob(blob.id)) == done
    assert result(storage.blobs.getBlobByUid(blob.uid)) == done
    renamed = result(storage.blobs.updateBlob(blob.id, name="b.txt", public=True))
    assert (renamed.name, renamed.public, renamed.size) == ("b.txt", True, 123)
    assert [b.id for b in result(storage.blobs.listBlobs(7))] == [blob.id, other.id]
    assert [b.id for b in result(storage.blobs.listBlobs(7, skip=1, limit=5))] == [other.id]
    assert result(storage.blobs.countBlobs(7)) == 2
    assert result(storage.blobs.deleteBlob(blob.id)) is True
    assert result(storage.blobs.deleteBlob(blob.id)) is False
    assert result(storage.blobs.getBlob(blob.id)) is None
    assert result(storage.blobs.getBlobByUid(blob.uid)) is None
    failure(storage.blobs.completeBlob(blob.id, 5), NotFound)
    failure(storage.blobs.updateBlob(other.id, uid="x"), ValueError)
    assert result(storage.blobs.createBlob(7, "c", None)).id > other.id


# -- custom records -------------------------------------------------------------------


def test_records(storage, clock):
    """Records are created per class, fetched, listed with queries, updated and deleted."""
    first = result(storage.records.createRecord("UserReports", 5, {"reportedUserId": 202, "reason": "spam"}))
    assert isinstance(first, Record) and isObjectId(first.id)
    assert (first.className, first.userId, first.fields, first.parentId) == (
        "UserReports", 5, {"reportedUserId": 202, "reason": "spam"}, None)
    clock.advance(10)
    second = result(storage.records.createRecord("UserReports", 6, {"reportedUserId": 303},
                                                 parentId="p1", recordId="e" * 24))
    assert second.id == "e" * 24
    result(storage.records.createRecord("MessageReports", 5, {"reportedUserId": 202}))
    assert result(storage.records.getRecord("UserReports", first.id)) == first
    assert result(storage.records.getRecord("MessageReports", first.id)) is None

    def listed(*filters, **kwargs):
        return [r.id for r in result(storage.records.listRecords("UserReports", userQuery(*filters, **kwargs)))]

    assert listed() == [first.id, second.id]
    assert listed(("reportedUserId", "eq", 202)) == [first.id]
    assert listed(("created_at", "gt", first.createdAt)) == [second.id]
    assert listed(("user_id", "in", [5, 6]), sort="created_at", descending=True) == [second.id, first.id]
    assert listed(("_parent_id", "eq", "p1")) == [second.id]
    assert result(storage.records.countRecords("UserReports")) == 2
    assert result(storage.records.countRecords("Nothing")) == 0
    updated = result(storage.records.updateRecord("UserReports", first.id, set={"reason": "abuse", "n": 1},
                                                  unset=["reportedUserId"]))
    assert updated.fields == {"reason": "abuse", "n": 1}
    assert updated.updatedAt > first.updatedAt and updated.createdAt == first.createdAt
    failure(storage.records.updateRecord("UserReports", "0" * 24, set={"a": 1}), NotFound)
    failure(storage.records.createRecord("UserReports", 5, {}, recordId="e" * 24), AlreadyExists)
    failure(storage.records.createRecord("Bad.Class", 5, {}), ValueError)
    failure(storage.records.createRecord("UserReports", 5, {"a.b": 1}), ValueError)
    assert result(storage.records.deleteRecord("UserReports", first.id)) is True
    assert result(storage.records.deleteRecord("UserReports", first.id)) is False
    assert listed() == [second.id]


@ROUND_TRIP
@given(className=keys, userId=st.integers(1, 2**40), fields=st.dictionaries(keys, json, max_size=5),
       parentId=st.none() | names, update=st.dictionaries(keys, json, max_size=3),
       unset=st.lists(keys, max_size=3))
def test_recordRoundTrip(backend, className, userId, fields, parentId, update, unset):
    """Any record reads back as created, and updates set and remove exactly the given keys."""
    storage = openBackend(backend)
    try:
        created = result(storage.records.createRecord(className, userId, fields, parentId=parentId))
        assert (created.className, created.userId, created.fields, created.parentId) == (
            className, userId, fields, parentId)
        assert result(storage.records.getRecord(className, created.id)) == created
        assert result(storage.records.listRecords(className)) == [created]
        expected = {**fields, **update}
        for key in unset:
            expected.pop(key, None)
        updated = result(storage.records.updateRecord(className, created.id, set=update, unset=unset))
        assert updated.fields == expected
        assert result(storage.records.getRecord(className, created.id)) == updated
    finally:
        result(storage.stop())


dialogFilter = st.one_of(
    st.tuples(st.just("occupants_ids"), st.sampled_from(["eq", "ne", "lt", "gte"]), st.integers(1, 5)),
    st.tuples(st.just("occupants_ids"), st.sampled_from(["in", "nin", "all", "or"]),
              st.lists(st.integers(1, 5), max_size=3)),
    st.tuples(st.just("name"), st.sampled_from(["eq", "ne"]), st.none() | small),
    st.tuples(st.just("name"), st.sampled_from(["ctn", "start_with", "gt"]), small),
    st.tuples(st.just("type"), st.just("eq"), st.sampled_from([1, 2])),
    st.tuples(st.just("type"), st.sampled_from(["in", "or"]), st.sampled_from([[1, 2], [2], []])))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dialogs=st.lists(st.tuples(st.sampled_from([1, 2]), st.lists(st.integers(1, 5), max_size=3),
                                  st.none() | small), max_size=5),
       filters=st.lists(dialogFilter, max_size=3))
def test_dialogQuerySemantics(backend, dialogs, filters):
    """Dialog filters on list, text and number fields select what the documented semantics select."""
    storage = openBackend(backend)
    try:
        created = [result(storage.dialogs.createDialog(t, 9, occupants, name=name))
                   for t, occupants, name in dialogs]
        def value(dialog, field):
            return {"occupants_ids": dialog.occupantIds, "name": dialog.name, "type": dialog.type}[field]

        expected = []
        for dialog in created:
            plain = [f for f in filters if f[1] != "or"]
            either = [f for f in filters if f[1] == "or"]
            if all(reference(value(dialog, f), op, v) for f, op, v in plain) and (
                    not either or any(reference(value(dialog, f), op, v) for f, op, v in either)):
                expected.append(dialog.id)
        found = result(storage.dialogs.listDialogs(None, userQuery(*filters)))
        assert [d.id for d in found] == expected
    finally:
        result(storage.stop())


# -- completeness -------------------------------------------------------------------

INTERFACES = {"accounts": "IAccountStore", "tokens": "ITokenStore", "offline": "IOfflineStore",
              "roster": "IRosterStore", "lastActivity": "ILastActivityStore",
              "dialogs": "IDialogStore", "messages": "IMessageStore", "blobs": "IBlobStore",
              "records": "IRecordStore"}


def test_everyInterfaceMethodImplemented(storage):
    """Each store implements every method of its interface with the same parameters."""
    import inspect

    from xmppchat.storage import interfaces

    for attribute, name in INTERFACES.items():
        interface = getattr(interfaces, name)
        store = getattr(storage, attribute)
        for method, f in vars(interface).items():
            if not inspect.isfunction(f) or method.startswith("_"):
                continue
            implemented = getattr(store, method, None)
            assert callable(implemented), f"{attribute}.{method} missing"
            expected = list(inspect.signature(f).parameters)[1:]
            assert list(inspect.signature(implemented).parameters) == expected, f"{attribute}.{method}"


def test_mucRoomMapping(storage):
    """A room created over XMPP maps to its dialog through extensions.muc_room, found without a user id."""
    from xmppchat.muc.room import EXT_ROOM

    made = result(storage.dialogs.createDialog(DIALOG_GROUP, 1, name="Team", extensions={EXT_ROOM: "team"}))
    result(storage.dialogs.createDialog(DIALOG_GROUP, 2, extensions={EXT_ROOM: "team-b"}))

    def find(name):
        return [d.id for d in result(storage.dialogs.listDialogs(
            None, Query(limit=1).where(f"extensions.{EXT_ROOM}", "eq", name)))]

    assert find("team") == [made.id]
    assert find("nope") == []
    assert result(storage.dialogs.getDialog(made.id)).extensions == {EXT_ROOM: "team"}


def test_countAllOffline(storage):
    """countAllOffline counts every user's stored messages (the admin API's stats, issue 18)."""
    assert result(storage.offline.countAllOffline()) == 0
    for lp, count in (("alice", 2), ("bob", 3)):
        addAccount(storage, lp)
        for _ in range(count):
            result(storage.offline.storeOffline(lp, "<message/>", 1.0, 10))
    assert result(storage.offline.countAllOffline()) == 5


def test_largestOfflineQueues(storage):
    """largestOfflineQueues lists the users with the most stored messages, most first, ties by name (issue 19 Overview)."""
    assert result(storage.offline.largestOfflineQueues(5)) == []
    for lp, count in (("alice", 2), ("bob", 3), ("carol", 1), ("dave", 2)):
        addAccount(storage, lp)
        for _ in range(count):
            result(storage.offline.storeOffline(lp, "<message/>", 1.0, 10))
    assert result(storage.offline.largestOfflineQueues(3)) == [("bob", 3), ("alice", 2), ("dave", 2)]
    assert result(storage.offline.largestOfflineQueues(10))[-1] == ("carol", 1)
