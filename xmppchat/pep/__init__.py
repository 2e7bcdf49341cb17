"""
XEP-0163 Personal Eventing Protocol on XEP-0060 (issue 16 item 1): node
configuration (L{nodeconfig}), the service (L{service}: storage, access,
notifications) and the C{+notify} interest learned from entity caps
(L{interest}).  The protocol adapter is L{xmppchat.modules.pep}.
"""
