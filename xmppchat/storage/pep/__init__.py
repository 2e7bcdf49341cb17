"""
The PEP store (XEP-0163 on XEP-0060): each account's nodes, their
configuration and their items (issue 16 item 1).
"""
