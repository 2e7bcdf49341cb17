"""
The safe parts of C{[rest]} applied to the running REST side-service
(issue 18, "reload (TLS, limits, logging, the safe parts of REST)"): the
C{rest} part of C{POST /admin/api/reload} and of SIGHUP
(L{xmppchat.service.XMPPChatService.reloadHooks}).

The site's collections read C{site.ctx.config}, the running
L{xmppchat.config.RestConfig}, at each request, so the values of
L{RELOADED} are copied into it and apply from the next request on; the
rate limiters (L{xmppchat.api.ratelimit.RateLimiter.configure}) keep
their buckets, and the site's request-size bound follows the body and blob
limits.  Every one of them bounds or shapes new requests only:

  - the rate limits and C{rate_limit_keys}, C{cors_origins};
  - C{max_body_bytes}, C{blob_max_bytes}, C{max_custom_data_bytes}: the
    next bodies, uploads and writes (what is stored stays, also when
    larger);
  - C{max_page} and the filter limits: the next queries;
  - C{token_seconds}: tokens issued from now on (issued ones keep their
    stored expiry);
  - C{data_classes}: a class added is served at once; one removed answers
    404 while its stored records stay untouched, served again when it is
    added back.

L{RESTART} keys keep their running values (a changed one is named in a
warning): the listener (C{enabled}, C{interface}, C{port}, C{http_bind})
and C{public_url}, which goes with it; C{apps}, the application and its
keys, whose C{application_id} names the stored users and which live
application sessions and JWT logins were checked against (rotate keys in
the admin panel, L{xmppchat.ops.admin.settings}, or with a restart, as
Prosody and ejabberd do for listeners and credentials; a reload compares
the file with the panel's values laid over it, so a rotated key is no
change); and
C{max_app_sessions}, whose lowering would evict live application sessions.
"""

from __future__ import annotations

from dataclasses import fields

from twisted.logger import Logger

from xmppchat.api.site import requestLimit

log = Logger()

RELOADED = ("token_rate_per_minute", "token_burst", "address_rate_per_minute", "address_burst",
            "rate_limit_keys", "cors_origins", "max_body_bytes", "blob_max_bytes",
            "max_custom_data_bytes", "max_page", "max_filters", "max_filter_values",
            "max_filter_value_length", "token_seconds", "data_classes")
RESTART = ("enabled", "interface", "port", "http_bind", "public_url", "apps", "max_app_sessions")


def reloadRest(service, fresh) -> bool:
    """
    Apply L{RELOADED} of C{fresh.rest} (a re-read L{xmppchat.config.Config})
    to C{service}'s running configuration and REST site (C{service.restAPI},
    C{None} when C{[rest]} is off); warn about L{RESTART} keys that changed.
    """
    rest, new = service.config.rest, fresh.rest
    kept = [f.name for f in fields(rest) if f.name in RESTART and getattr(rest, f.name) != getattr(new, f.name)]
    if kept:
        # names only: apps holds keys
        log.warn("[rest] {keys} changed in the config file: kept until a restart", keys=", ".join(kept))
    for name in RELOADED:
        setattr(rest, name, getattr(new, name))
    site = service.restAPI
    if site is not None:
        site.ctx.rateLimits.configure(rest)
        site.maxRequestBytes = requestLimit(service.config)
    return True


__all__ = ["RELOADED", "RESTART", "reloadRest"]
