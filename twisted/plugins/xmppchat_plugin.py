"""
twistd plugin for xmppchat; only names L{xmppchat.tap}, which is imported
lazily when the command is used.
"""

from twisted.application.service import ServiceMaker

xmppchat = ServiceMaker(
    "xmppchat",
    "xmppchat.tap",
    "A native XMPP chat server (TCP, STARTTLS, direct TLS)",
    "xmppchat",
)
