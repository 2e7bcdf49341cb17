"""
Benchmark fixtures written through xmppchat's storage API (no wire
traffic): a group dialog (type 2) with the first N imported accounts as
occupants, and a dialog pre-filled with M messages for the REST history
stage.  Prints one JSON object: C{{"group": {...}, "history": {...}}}.

    python bench/seed.py --config DIR/xmppchat.toml --group 1000 --history 100000

The storage runs synchronously (like C{xmppchat.admin}); SQLite is in WAL
mode, so this works while the server runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def seed(configPath: str, users: int, groupSizes, history: int, prefix: str = "u") -> dict:
    from xmppchat.admin import result
    from xmppchat.config import loadConfig
    from xmppchat.storage import openStorage
    from xmppchat.storage.interfaces import DIALOG_GROUP

    config = loadConfig(configPath)
    storage = openStorage(config.storage, synchronous=True)
    result(storage.start())
    try:
        ids = []
        for i in range(users):
            account = result(storage.accounts.getAccountByLocalpart(f"{prefix}{i}"))
            ids.append(account.id)
        out = {"ids": ids, "groups": {}}
        for size in groupSizes:
            dialog = result(storage.dialogs.createDialog(
                DIALOG_GROUP, ids[0], occupantIds=ids[:size], name=f"bench fan-out {size}"))
            out["groups"][str(size)] = dialog.id
        if history:
            dialog = result(storage.dialogs.createDialog(
                DIALOG_GROUP, ids[0], occupantIds=ids[:2], name="bench history"))
            started = time.monotonic()
            base = int(time.time()) - history
            for n in range(history):
                result(storage.messages.createMessage(dialog.id, ids[n % 2], f"history {n}",
                                                      dateSent=base + n))
            out["history"] = {"dialog": dialog.id, "messages": history,
                              "insert_s": round(time.monotonic() - started, 1)}
        return out
    finally:
        result(storage.stop())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--users", type=int, required=True, help="accounts u0..uN-1 to look up")
    parser.add_argument("--group", type=int, action="append", default=[], help="a group dialog of this size")
    parser.add_argument("--history", type=int, default=0, help="messages in the history dialog")
    args = parser.parse_args(argv)
    print(json.dumps(seed(args.config, args.users, args.group, args.history)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
