"""
The admin API's error answer (L{xmppchat.ops.adminapi}), in a module of
its own so that the panel's session code raises it without importing the
API.
"""

from __future__ import annotations


class ApiError(Exception):
    """
    An answer other than 2xx: its status and a readable text.
    """

    def __init__(self, status: int, text: str):
        Exception.__init__(self, text)
        self.status = status
        self.text = text
