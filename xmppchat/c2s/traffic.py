"""
Traffic logging (C{log_traffic}) without secrets.

SASL payloads (RFC 6120 §6.4.2-§6.4.6: C{<auth/>}, C{<response/>},
C{<challenge/>}, C{<success/>}) carry the PLAIN password, which may be a
REST session token or a JWT, and SCRAM proofs: they are replaced by
C{[redacted]} before a chunk of traffic is logged.  A chunk that ends inside
such a payload is redacted to its end.
"""

from __future__ import annotations

import re

SASL_PAYLOAD = re.compile(rb"(<(?:[A-Za-z0-9_-]+:)?(?:auth|response|challenge|success)\b[^>]*(?<!/)>)[^<]*")


def redact(data: bytes | str) -> bytes:
    """
    C{data} with the text of SASL elements replaced by C{[redacted]}.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    return SASL_PAYLOAD.sub(rb"\1[redacted]", data)
