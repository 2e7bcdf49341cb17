"""
The admin API's features beyond the operations of issue 18 (issue 19, the
web admin panel): one module per panel page, each with
C{install(api)} registering its routes on the L{AdminAPI}
(C{api.route(method, pattern, handler)}).
"""

from __future__ import annotations

import importlib

FEATURES = ("overview", "users", "dialogs", "settings", "moderation")


def installAll(api) -> None:
    for name in FEATURES:
        importlib.import_module(f"{__name__}.{name}").install(api)
