"""
xmppchat: a native XMPP chat server on Twisted and wokkel.
"""

from xmppchat import _compat  # noqa: F401  (must run before any wokkel import)

__version__ = "0.1.0"
