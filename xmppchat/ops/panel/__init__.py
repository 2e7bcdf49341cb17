"""
The web admin panel (issue 19): static pages under C{/admin/} on the ops
listener, every action through the admin API (C{/admin/api/},
L{xmppchat.ops.adminapi}), signed in with C{[[ops.administrators]]}
(L{xmppchat.ops.panel.auth}, L{xmppchat.ops.panel.session}).

The front end is plain files in C{static/} (no build step, nothing
fetched from the network): C{index.html}, C{core.js} (sign-in, routing,
the API client, DOM helpers), C{panel.css} and one script per page in
C{static/pages/}.  Every file is read once at start and served with a
strict Content-Security-Policy (scripts and styles from the panel only,
no inline code, no framing), C{nosniff} and no referrer; over TLS also
C{Strict-Transport-Security}.
"""

from __future__ import annotations

from pathlib import Path

from twisted.web import resource

STATIC = Path(__file__).parent / "static"
TYPES = {".html": b"text/html; charset=utf-8", ".js": b"text/javascript; charset=utf-8",
         ".css": b"text/css; charset=utf-8", ".svg": b"image/svg+xml", ".png": b"image/png"}
CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:;"
       b" connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HSTS = b"max-age=31536000"


def securityHeaders(request) -> None:
    """The headers every panel answer carries (the API's JSON included)."""
    request.setHeader(b"content-security-policy", CSP)
    request.setHeader(b"x-frame-options", b"DENY")
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    if request.isSecure():
        request.setHeader(b"strict-transport-security", HSTS)


def loadFiles(directory: Path = STATIC) -> dict[str, tuple[bytes, bytes]]:
    """
    C{relative path -> (content type, bytes)} of the panel's files.
    """
    files = {}
    for path in sorted(directory.rglob("*")):
        kind = TYPES.get(path.suffix)
        if path.is_file() and kind is not None:
            files[path.relative_to(directory).as_posix()] = (kind, path.read_bytes())
    return files


class PanelFiles(resource.Resource):
    """
    C{/admin/<file>}: the panel's static files; C{/admin/} is C{index.html}.
    """

    isLeaf = True

    def __init__(self, files: dict):
        resource.Resource.__init__(self)
        self.files = files

    def render_GET(self, request):
        securityHeaders(request)
        name = "/".join(p.decode("utf-8", "replace") for p in request.postpath) or "index.html"
        found = self.files.get(name)
        if found is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"No such page\n"
        kind, data = found
        request.setHeader(b"content-type", kind)
        request.setHeader(b"cache-control", b"no-cache")
        return data

    render_HEAD = render_GET


class AdminRoot(resource.Resource):
    """
    C{/admin}: C{api} (the admin API, always there), and the panel's
    files when C{[ops] panel} is on (404 otherwise).
    """

    def __init__(self, api, panel: bool):
        resource.Resource.__init__(self)
        self.putChild(b"api", api)
        self.files = PanelFiles(loadFiles()) if panel else resource.NoResource("The admin panel is off")

    def getChild(self, path, request):
        request.postpath.insert(0, path)
        request.prepath.pop()
        return self.files

    def render_GET(self, request):
        request.redirect(b"/admin/")
        return b""
