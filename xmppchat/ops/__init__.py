"""
The operations listener (issue 18): C{[ops]}, loopback by default, for
what runs the server rather than what chats on it: the Prometheus
C{/metrics}, the load balancer's C{/health} and the admin API under
C{/admin/}.  Each feature mounts itself on L{opsSite}'s root resource.
"""

from __future__ import annotations

from twisted.web import resource, server


class OpsRoot(resource.Resource):
    """
    The root: 404 for anything no feature mounted.
    """


def opsSite(service) -> server.Site:
    """
    The ops listener's site for one running L{XMPPChatService}.
    """
    root = OpsRoot()
    site = server.Site(root)
    site.displayTracebacks = False
    site.noisy = False
    site.service = service
    from xmppchat.ops.adminapi import mountAdminAPI

    mountAdminAPI(root, service)  # /admin/api (issue 18 item 4)
    return site
