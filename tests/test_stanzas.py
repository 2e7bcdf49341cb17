"""
Tests for L{xmppchat.stanzas}: error replies (RFC 6120 §8.3).
"""

import pytest

from xmppchat.stanzas import errorReply
from tests.helpers import xml

CONDITIONS = (
    "bad-request conflict feature-not-implemented forbidden gone internal-server-error item-not-found "
    "jid-malformed not-acceptable not-allowed not-authorized policy-violation recipient-unavailable "
    "redirect registration-required remote-server-not-found remote-server-timeout resource-constraint "
    "service-unavailable subscription-required undefined-condition unexpected-request"
).split()


@pytest.mark.parametrize("condition", CONDITIONS)
def test_everyConditionSerialises(condition):
    """Each RFC 6120 §8.3.3 condition gives an <error/> with a type, which serialises."""
    reply = errorReply(xml("<presence to='u@localhost/r' from='a@localhost/x' id='1'/>"), condition, "why")
    assert reply.error["type"] in ("auth", "cancel", "continue", "modify", "wait")
    assert f"<{condition} " in reply.toXml()


def test_policyViolationIsModify():
    """policy-violation, missing from Twisted's RFC 3920 table, is type modify (RFC 6120 §8.3.3.12)."""
    reply = errorReply(xml("<message to='u@localhost' from='a@localhost/x'/>"), "policy-violation")
    assert reply.error["type"] == "modify"
