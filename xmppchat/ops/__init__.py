"""
The operations listener (issue 18): C{[ops]}, loopback by default, for
what runs the server rather than what chats on it: the Prometheus
C{/metrics}, the load balancer's C{/health} and the admin API under
C{/admin/}.  Each feature mounts itself on L{opsSite}'s root resource.
"""

from __future__ import annotations

from twisted.web import resource, server

from xmppchat.httpsite import QuietSite
from xmppchat.ops.adminapi import MAX_BODY_BYTES, mountAdminAPI
from xmppchat.ops.health import HealthResource
from xmppchat.ops.metrics import MetricsResource


IDLE_SECONDS = 60
"""An idle keep-alive connection of a scraper or probe is closed after this."""


class OpsRoot(resource.Resource):
    """
    The root: 404 for anything no feature mounted.
    """


def opsSite(service) -> server.Site:
    """
    The ops listener's site for one running L{XMPPChatService}: bodies
    over the admin API's limit are refused 413 before they are read, and
    scrapes and probes write no access log line (security review of issue
    18, finding 3; the admin API logs its own actions).
    """
    root = OpsRoot()
    site = QuietSite(root, MAX_BODY_BYTES, IDLE_SECONDS, refuseEarly=True)
    site.displayTracebacks = False
    site.service = service
    mountAdminAPI(root, service)  # /admin/api (issue 18 item 4)
    root.putChild(b"metrics", MetricsResource(service))
    root.putChild(b"health", HealthResource(service))
    return site
