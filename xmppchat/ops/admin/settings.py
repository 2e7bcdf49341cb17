"""
The admin API for the panel's settings page (issue 19).
"""

from __future__ import annotations


def install(api) -> None:
    """Register this feature's routes on C{api} (an L{xmppchat.ops.adminapi.AdminAPI})."""
