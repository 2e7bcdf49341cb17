"""
The settings store: name -> JSON value.

Both backends keep them in the C{settings} table / collection the storage
already has for its own markers (the configured dialog extension fields,
the MongoDB backfill mark), so the store needs no migration; a caller keeps
to its own name prefix (L{xmppchat.runsettings.PREFIX}) and lists by it.
An SQLite backup holds them (it copies the database file), and the
portable export (L{xmppchat.portable}) carries those of the admin panel.
"""

from __future__ import annotations

import json
from typing import Protocol

from twisted.internet.defer import Deferred

from xmppchat.storage.common import dumpJson

MAX_SETTINGS = 1000
MAX_NAME = 200
MAX_VALUE_BYTES = 65536


def checkName(name) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise ValueError(f"a setting name is a string of 1 to {MAX_NAME} characters")
    return name


def encodeValue(value) -> str:
    """
    C{value} as the JSON text stored; C{ValueError} when it is not JSON or
    is larger than L{MAX_VALUE_BYTES}.
    """
    try:
        text = dumpJson(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"a setting value must be JSON: {e}") from None
    if text is None or len(text.encode("utf-8")) > MAX_VALUE_BYTES:
        raise ValueError(f"a setting value is non-null JSON of at most {MAX_VALUE_BYTES} bytes")
    return text


def decodeValue(text: str):
    return json.loads(text)


class ISettingStore(Protocol):
    def getSettings(self, prefix: str) -> Deferred:
        """
        Fires with C{{name: value}} of the settings whose name starts with
        C{prefix} (not empty), at most L{MAX_SETTINGS} (by name).
        """

    def putSetting(self, name: str, value) -> Deferred:
        """
        Store C{value} (any non-null JSON value) under C{name}, replacing
        what was there; C{ValueError} for a bad name or value.
        """

    def addSetting(self, name: str, value) -> Deferred:
        """
        Store C{value} under C{name} unless something is there already
        (atomically: of processes racing, the first wins); fires with the
        value stored under C{name} afterwards.
        """

    def deleteSetting(self, name: str) -> Deferred:
        """
        Forget C{name}; fires with C{True} when it was set.
        """
