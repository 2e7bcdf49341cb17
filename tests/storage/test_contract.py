"""
The storage contract: one suite that every backend must pass.

The C{storage} fixture is parametrised over L{BACKENDS}; a backend is added
with one entry in L{FACTORIES} (a callable returning an unstarted storage
whose calls fire synchronously).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xmppchat.storage.interfaces import (
    Account,
    AlreadyExists,
    NotFound,
    OfflineMessage,
    QuotaExceeded,
    RosterItem,
    TokenRecord,
)
from xmppchat.storage.sqlite import SQLiteStorage

FACTORIES = {
    "sqlite-memory": lambda: SQLiteStorage(":memory:", synchronous=True),
    # "mongo": lambda: MongoStorage(mongomock.MongoClient(), "test", synchronous=True),
}
BACKENDS = list(FACTORIES)


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


def openBackend(name):
    storage = FACTORIES[name]()
    result(storage.start())
    return storage


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def storage(backend):
    storage = openBackend(backend)
    yield storage
    result(storage.stop())


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


def test_createAccountsBulk(storage):
    """createAccounts creates 10,000 accounts at once with consecutive ids."""
    entries = [(f"user{i}", {"n": i}) for i in range(10000)]
    created, skipped = result(storage.accounts.createAccounts(entries))
    assert (created, skipped) == (10000, [])
    assert result(storage.accounts.countAccounts()) == 10000
    account = result(storage.accounts.getAccountByLocalpart("user9999"))
    assert (account.id, account.credentials, account.profile) == (10000, {"n": 9999}, {})


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


def test_offlineNoLimit(storage):
    """A limit of None stores without a quota."""
    for i in range(20):
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
    """removeRosterItem removes one item and says whether it existed."""
    result(storage.roster.setRosterItem("alice", RosterItem("bob@localhost")))
    result(storage.roster.setRosterItem("alice", RosterItem("carol@localhost")))
    assert result(storage.roster.removeRosterItem("alice", "bob@localhost")) is True
    assert result(storage.roster.removeRosterItem("alice", "bob@localhost")) is False
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
