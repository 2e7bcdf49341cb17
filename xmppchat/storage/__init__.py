"""
Persistent state behind one interface per store (L{interfaces}), with two
backends: the embedded SQLite default (L{sqlite}) and MongoDB for production
(L{mongo}).
"""

from __future__ import annotations

import os

from twisted.internet import defer

from xmppchat.storage.common import QUERY_TIMEOUT_MS
from xmppchat.storage.interfaces import Storage


def _queryTimeout(storageConfig) -> int:
    return getattr(storageConfig, "query_timeout_ms", QUERY_TIMEOUT_MS)


def openStorage(storageConfig, reactor=None, synchronous: bool = False) -> Storage:
    """
    The backend named by C{storageConfig.backend}, not yet started.

    @param storageConfig: L{xmppchat.config.StorageConfig} (C{backend},
        C{path} absolute or C{":memory:"}, Mongo settings).
    @param synchronous: run calls inline (admin CLI, tests) instead of on a
        worker thread.
    """
    backend = storageConfig.backend
    if backend == "sqlite":
        from xmppchat.storage.sqlite import READ_CONNECTIONS, SQLiteStorage

        path = storageConfig.path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return SQLiteStorage(path, reactor=reactor, synchronous=synchronous,
                             readConnections=getattr(storageConfig, "read_connections",
                                                     READ_CONNECTIONS),
                             queryTimeoutMs=_queryTimeout(storageConfig))
    if backend == "mongodb":
        from xmppchat.storage.mongo import SERVER_SELECTION_TIMEOUT_MS, MongoStorage

        return MongoStorage(storageConfig.mongodb_uri, storageConfig.mongodb_database,
                            storageConfig.mongodb_pool_size, reactor=reactor,
                            synchronous=synchronous,
                            timeoutMs=getattr(storageConfig, "mongodb_timeout_ms",
                                              SERVER_SELECTION_TIMEOUT_MS),
                            queryTimeoutMs=_queryTimeout(storageConfig))
    raise ValueError(f"unknown storage backend {backend!r}")


def startStorage(storage: Storage, config, settings=None):
    """
    Start C{storage} and bring what it keeps in line with the full
    L{xmppchat.config.Config}: first the admin panel's settings laid over
    it (C{settings}, a L{xmppchat.runsettings.RunSettings} of C{config},
    made here when not given; issue 19), then the dialog extension fields
    of C{[dialogs] extension_fields} (issue 17 item 5: indexed, and a field
    removed from the config and the panel removed from every dialog).
    Fires when ready.
    """
    from xmppchat.runsettings import RunSettings

    if settings is None:
        settings = RunSettings(config, storage)

    d = storage.start()
    d.addCallback(lambda _: defer.ensureDeferred(settings.load()))
    return d.addCallback(lambda _: defer.ensureDeferred(settings.configureExtensions()))


__all__ = ["openStorage", "startStorage"]
