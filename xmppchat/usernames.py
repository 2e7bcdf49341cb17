"""
The user name rules of C{adduser}, the admin API and C{import} (kept out
of L{xmppchat.admin} so that L{xmppchat.portable}, which the admin CLI
runs, can use them without an import cycle; security review of issue 18,
finding 6).
"""

from __future__ import annotations


class AdminError(Exception):
    """
    A problem to report on stderr, exiting with status 1.
    """


def _parseJID(s: str):
    """
    Our bounded JID parser if present, else Twisted's; returns a JID or
    raises C{ValueError}.
    """
    try:
        from xmppchat.jid import parseJID
    except ImportError:
        from twisted.words.protocols.jabber import jid

        try:
            return jid.JID(s)
        except (jid.InvalidFormat, UnicodeError, IndexError) as e:
            raise ValueError(str(e) or "invalid JID") from None
    return parseJID(s)


def localpartOf(name: str, domain: str) -> str:
    """
    The prepared localpart for user C{name} on C{domain}; L{AdminError} if
    C{name@domain} is not a valid bare JID.
    """
    if not name or "@" in name or "/" in name:
        raise AdminError(f"invalid user name {name!r}")
    try:
        parsed = _parseJID(f"{name}@{domain}")
    except ValueError as e:
        raise AdminError(f"invalid user name {name!r}: {e}") from None
    if not parsed.user or parsed.resource is not None:
        raise AdminError(f"invalid user name {name!r}")
    return parsed.user


def newLocalpartOf(name: str, domain: str, appId: int) -> str:
    """
    L{localpartOf} for a new user: C{<id>-<otherApp>}, the shape of a
    REST/SDK account of another application, is refused (one application
    per server, issue 15 finding 2): no JID naming another application
    resolves to an account here.
    """
    from xmppchat.dialogs.addressing import appIdOf

    localpart = localpartOf(name, domain)
    other = appIdOf(localpart)
    if other is not None and other != appId:
        raise AdminError(f"invalid user name {name!r}: <id>-<appId> names another application"
                         f" (this server serves application {appId})")
    return localpart


def serverAppId(config) -> int:
    """
    The application this server serves (the one C{[[rest.apps]]}), 1 when
    none is configured (as the dialog rooms assume).
    """
    apps = config.rest.apps
    return apps[0]["application_id"] if apps else 1
