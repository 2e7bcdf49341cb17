"""
Who may open how many rooms (issue 15 finding 7): the server-wide table
of open rooms (C{[muc] max_rooms}) must not be fillable by a few accounts.

A room is in the table while someone is in it; the join that brings it
there (a new room, XEP-0045 §10.1, or the room of an existing dialog) is
an I{opening}, charged to the joining account and, when known, to its
client address until the room closes.  Joining a room that is already
open costs nothing.  Per account: at most C{rooms_opened_per_user} rooms
it opened still open, and openings at C{room_openings_per_minute} with
bursts of C{room_openings_burst}; per address: at most
C{rooms_opened_per_ip} (loopback exempt with C{[limits]
exempt_loopback}).

Over a count the join gets C{not-allowed} (type cancel): XEP-0045 §10.1.1
("If access is restricted and a user attempts to create a room, the
service MUST return a <not-allowed/> error") and the §7.2 table ("Inform
user that room creation is restricted"); over the rate it gets
C{resource-constraint} (type wait, RFC 6120 §8.3.3.18) saying when to
retry, as the message rate limit does.  In cluster mode each node counts
the rooms it owns (each node has its own table), and the address of a
session on another node is not known there.
"""

from __future__ import annotations

from collections import OrderedDict

from xmppchat import observe
from xmppchat.ratelimit import TokenBucket, isLoopback
from xmppchat.stanzas import StanzaError

MAX_BUCKETS = 100_000


def clientAddress(session) -> str | None:
    """
    The client address of a local session, else C{None}.
    """
    stream = getattr(session, "stream", None)
    return getattr(stream, "peer", None) or None


class RoomOpenings:
    """
    Counts the open rooms each account and address opened, and the rate
    of openings per account.
    """

    def __init__(self, muc, limits, clock):
        self.perUser = muc.rooms_opened_per_user
        self.perAddress = muc.rooms_opened_per_ip
        self.rate = muc.room_openings_per_minute / 60.0
        self.burst = muc.room_openings_burst
        self.exemptLoopback = limits.exempt_loopback
        self.clock = clock
        self.byUser: dict[int, int] = {}
        self.byAddress: dict[str, int] = {}
        self.buckets: OrderedDict[int, TokenBucket] = OrderedDict()

    def _address(self, session) -> str | None:
        address = clientAddress(session)
        if address is None or (self.exemptLoopback and isLoopback(address)):
            return None
        return address

    def check(self, userId: int, session) -> None:
        """
        Raise the L{StanzaError} that refuses this opening, if any; else
        charge it to the account's rate.
        """
        if self.byUser.get(userId, 0) >= self.perUser:
            raise StanzaError("not-allowed", text=f"You already opened {self.perUser} rooms that are"
                              " still open: leave one before opening another")
        address = self._address(session)
        if address is not None and self.byAddress.get(address, 0) >= self.perAddress:
            raise StanzaError("not-allowed", text="Too many rooms opened from your address")
        now = self.clock.seconds()
        bucket = self.buckets.pop(userId, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
            while len(self.buckets) >= MAX_BUCKETS:
                self.buckets.popitem(last=False)
        self.buckets[userId] = bucket
        if not bucket.take(now):
            observe.emit("rate-limited", scope="room-openings", key=str(userId))
            raise StanzaError("resource-constraint", text=(
                f"Too many new rooms: at most {self.rate * 60:g} per minute;"
                f" retry in {bucket.wait(now):.0f} s"))

    def opened(self, room, userId: int, session) -> None:
        """
        C{room} entered the table through this account's join.
        """
        address = self._address(session)
        room.opener = (userId, address)
        self.byUser[userId] = self.byUser.get(userId, 0) + 1
        if address is not None:
            self.byAddress[address] = self.byAddress.get(address, 0) + 1

    def closed(self, room) -> None:
        """
        C{room} left the table.
        """
        opener = getattr(room, "opener", None)
        if opener is None:
            return
        room.opener = None
        userId, address = opener
        _decrement(self.byUser, userId)
        if address is not None:
            _decrement(self.byAddress, address)


def _decrement(counts: dict, key) -> None:
    count = counts.get(key, 0)
    if count <= 1:
        counts.pop(key, None)
    else:
        counts[key] = count - 1


__all__ = ["RoomOpenings", "clientAddress"]
