"""
Sites with bounded request bodies and no access log, for the listeners
that must not buffer what an unauthenticated client sends: the C{[bosh]}
listener (XEP-0124) and the C{[ops]} listener (security review of issue
18, finding 3: its bodies were spooled to temporary files whatever their
size, and every scrape or probe was an access-log line).
"""

from __future__ import annotations

import io

from twisted.web import server


class BoundedRequest(server.Request):
    """
    A request that keeps at most C{channel.site.maxBodyBytes} + 1 bytes of
    its body in memory (so that the resource sees it is too large, never
    a temporary file) and drops the connection of a client that sends
    twice as much.  On a site with C{refuseEarly}, a body announced
    (C{Content-Length}) or received (chunked) over the limit is answered
    413 at once, and the connection closed, without calling the resource.
    """

    received = 0
    refused = False

    def gotLength(self, length):
        self.content = io.BytesIO()
        site = self.channel.site
        if length is not None and length > site.maxBodyBytes and site.refuseEarly:
            self._refuse()

    def handleContentChunk(self, data):
        if self.refused:
            return
        site = self.channel.site
        limit = site.maxBodyBytes
        kept = self.received
        self.received += len(data)
        if kept <= limit:
            server.Request.handleContentChunk(self, data[:limit + 1 - kept])
        if self.received > limit and site.refuseEarly:
            self._refuse()
        elif self.received > 2 * limit and self.channel.transport is not None:
            self.channel.transport.loseConnection()

    def _refuse(self):
        """
        RFC 9110 §15.5.14: 413, then close (the rest of the body is not
        read).
        """
        self.refused = True
        transport = self.channel.transport
        if transport is None:
            return
        body = f"Request body larger than {self.channel.site.maxBodyBytes} bytes\n".encode()
        transport.write(b"HTTP/1.1 413 Content Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
                        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        transport.loseConnection()

    def process(self):
        if not self.refused:
            server.Request.process(self)


class QuietSite(server.Site):
    """
    A site with L{BoundedRequest}s, idle connections closed after
    C{idleSeconds}, and no access log line per request.
    """

    requestFactory = BoundedRequest
    noisy = False  # no "Starting factory <...>" lines (issue 18 item 2)

    def __init__(self, resource, maxBodyBytes, idleSeconds, refuseEarly=False):
        server.Site.__init__(self, resource, timeout=idleSeconds)
        self.maxBodyBytes = maxBodyBytes
        self.refuseEarly = refuseEarly

    def log(self, request):
        pass
