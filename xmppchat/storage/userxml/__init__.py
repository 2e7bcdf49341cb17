"""
Per-user XML documents (issue 16 items 2 and 3): the vCard-temp of
XEP-0054 and the XEP-0049 private XML storage, one serialised element per
(user, kind, key).
"""
