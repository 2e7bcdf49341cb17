"""
Persistent state behind one interface per store (L{interfaces}), with two
backends: the embedded SQLite default (L{sqlite}) and MongoDB for production.
"""

from __future__ import annotations

import os

from xmppchat.storage.interfaces import Storage


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
        from xmppchat.storage.sqlite import SQLiteStorage

        path = storageConfig.path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return SQLiteStorage(path, reactor=reactor, synchronous=synchronous)
    if backend == "mongodb":
        raise NotImplementedError("MongoDB backend arrives with the REST/persistence issue")
    raise ValueError(f"unknown storage backend {backend!r}")


__all__ = ["openStorage"]
