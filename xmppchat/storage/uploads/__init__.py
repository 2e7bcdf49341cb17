"""
XEP-0363 upload slots (L{xmppchat.modules.upload}): which blobs are still
waiting for their HTTP PUT, with the slot's token and expiry.
"""
