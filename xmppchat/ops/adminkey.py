"""
The admin API's key (issue 18 item 4): C{[ops] admin_key}, or the first
line of C{[ops] admin_key_file}; read by the server
(L{xmppchat.ops.adminapi}), the admin command and the config check.
"""

from __future__ import annotations

import os

MIN_KEY_LENGTH = 32


def loadAdminKey(ops, baseDir: str = ".") -> str | None:
    """
    The configured admin key (C{admin_key}, or the first line of
    C{admin_key_file} relative to C{baseDir}), C{None} when none is set;
    C{ValueError} when the file cannot be read.
    """
    if ops.admin_key:
        return ops.admin_key
    if ops.admin_key_file:
        path = os.path.join(baseDir, ops.admin_key_file)
        try:
            with open(path, encoding="utf-8") as f:
                return f.readline().strip()
        except (OSError, UnicodeError) as e:
            raise ValueError(f"cannot read {path}: {e}") from None
    return None


def keyProblem(ops, baseDir: str) -> str | None:
    """
    What is wrong with the configured admin key, for L{xmppchat.config}.
    """
    if ops.admin_key and ops.admin_key_file:
        return "set admin_key or admin_key_file, not both"
    try:
        key = loadAdminKey(ops, baseDir)
    except ValueError as e:
        return str(e)
    if key is not None and len(key) < MIN_KEY_LENGTH:
        return (f"the admin key must be at least {MIN_KEY_LENGTH} characters"
                f" (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return None
