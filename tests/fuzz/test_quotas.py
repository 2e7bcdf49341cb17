"""
Property-based check of the per-user quotas (issue 15 finding 15) on both
backends: any sequence of creations, uploads, growths and deletions of
blobs, records and dialogs by a few users keeps every user's usage within
his quotas, refuses exactly what would exceed them, and keeps the stores'
counts equal to what was accepted.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from tests.storage.test_contract import BACKENDS, openBackend, result
from xmppchat.storage.interfaces import DIALOG_GROUP, QuotaExceeded

QUOTA = {"blobs": 3, "blobBytes": 1000, "records": 4, "recordBytes": 300, "dialogs": 2}
USERS = (1, 2, 3)

FUZZ = settings(max_examples=int(os.environ.get("XMPPCHAT_FUZZ_EXAMPLES", "100")), deadline=None,
                derandomize=not os.environ.get("XMPPCHAT_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow])

users = st.sampled_from(USERS)
picks = st.integers(0, 20)
operations = st.lists(st.one_of(
    st.tuples(st.just("blob"), users),
    st.tuples(st.just("upload"), picks, st.integers(0, 700)),
    st.tuples(st.just("deleteBlob"), picks),
    st.tuples(st.just("record"), users, st.integers(0, 150)),
    st.tuples(st.just("grow"), picks, st.integers(0, 150)),
    st.tuples(st.just("deleteRecord"), picks),
    st.tuples(st.just("dialog"), users),
    st.tuples(st.just("deleteDialog"), picks),
), max_size=40)


def attempt(d):
    """C{True} if the Deferred succeeded, C{False} if it failed with QuotaExceeded."""
    try:
        result(d)
    except QuotaExceeded:
        return False
    return True


def admitted(d, fits):
    """The creation's result when it C{fits}; else it must have failed with QuotaExceeded."""
    if fits:
        return result(d)
    assert not attempt(d)
    return None


class Model:
    """
    What was accepted: blobs C{id -> (owner, size)}, records C{id -> (user,
    size)}, dialogs C{id -> owner}.
    """

    def __init__(self, storage):
        self.storage = storage
        self.blobs, self.records, self.dialogs = {}, {}, {}

    def used(self, items, user):
        mine = [size for owner, size in items.values() if owner == user]
        return len(mine), sum(mine)

    def apply(self, op):
        kind, *args = op
        getattr(self, kind)(*args)

    def blob(self, user):
        blobs = self.storage.blobs
        fits = self.used(self.blobs, user)[0] < QUOTA["blobs"]
        blob = admitted(blobs.createBlob(user, "f", None, limit=QUOTA["blobs"]), fits)
        if blob is not None:
            self.blobs[blob.id] = (user, 0)

    def upload(self, pick, size):
        if not self.blobs:
            return
        blobId = sorted(self.blobs)[pick % len(self.blobs)]
        owner, old = self.blobs[blobId]
        fits = self.used(self.blobs, owner)[1] - old + size <= QUOTA["blobBytes"]
        assert attempt(self.storage.blobs.reserveBlobBytes(blobId, size, QUOTA["blobBytes"])) == fits
        if fits:
            self.blobs[blobId] = (owner, size)

    def deleteBlob(self, pick):
        if self.blobs:
            blobId = sorted(self.blobs)[pick % len(self.blobs)]
            assert result(self.storage.blobs.deleteBlob(blobId))
            del self.blobs[blobId]

    def record(self, user, length):
        fields = {"t": "x" * length}
        size = len('{"t":""}') + length
        count, used = self.used(self.records, user)
        fits = count < QUOTA["records"] and used + size <= QUOTA["recordBytes"]
        record = admitted(self.storage.records.createRecord(
            "C", user, fields, limit=QUOTA["records"], byteLimit=QUOTA["recordBytes"]), fits)
        if record is not None:
            self.records[record.id] = (user, size)

    def grow(self, pick, length):
        if not self.records:
            return
        recordId = sorted(self.records)[pick % len(self.records)]
        user, old = self.records[recordId]
        size = len('{"t":""}') + length
        fits = size <= old or self.used(self.records, user)[1] - old + size <= QUOTA["recordBytes"]
        d = self.storage.records.updateRecord("C", recordId, set={"t": "x" * length},
                                              byteLimit=QUOTA["recordBytes"])
        assert attempt(d) == fits
        if fits:
            self.records[recordId] = (user, size)

    def deleteRecord(self, pick):
        if self.records:
            recordId = sorted(self.records)[pick % len(self.records)]
            assert result(self.storage.records.deleteRecord("C", recordId))
            del self.records[recordId]

    def dialog(self, user):
        fits = sum(1 for owner in self.dialogs.values() if owner == user) < QUOTA["dialogs"]
        dialog = admitted(self.storage.dialogs.createDialog(
            DIALOG_GROUP, user, [9], name="g", limit=QUOTA["dialogs"]), fits)
        if dialog is not None:
            self.dialogs[dialog.id] = user

    def deleteDialog(self, pick):
        if self.dialogs:
            dialogId = sorted(self.dialogs)[pick % len(self.dialogs)]
            assert result(self.storage.dialogs.deleteDialog(dialogId))
            del self.dialogs[dialogId]

    def check(self):
        """Every user within his quotas, and the stores agree with the model."""
        for user in USERS:
            blobs = result(self.storage.blobs.blobUsage(user))
            assert blobs == self.used(self.blobs, user)
            assert blobs[0] <= QUOTA["blobs"] and blobs[1] <= QUOTA["blobBytes"]
            assert result(self.storage.blobs.countBlobs(user)) == blobs[0]
            records = result(self.storage.records.recordUsage(user))
            assert records == self.used(self.records, user)
            assert records[0] <= QUOTA["records"] and records[1] <= QUOTA["recordBytes"]
        assert result(self.storage.dialogs.countDialogs(None)) == len(self.dialogs)


@pytest.mark.parametrize("backend", BACKENDS)
@FUZZ
@given(ops=operations)
def test_anySequenceKeepsUsageWithinQuota(backend, ops):
    """Any create/upload/grow/delete sequence: usage <= quota, exact refusals, consistent counts."""
    clock = Clock()
    clock.advance(1_700_000_000)
    storage = openBackend(backend, clock)
    try:
        model = Model(storage)
        for op in ops:
            model.apply(op)
            model.check()
    finally:
        result(storage.stop())
