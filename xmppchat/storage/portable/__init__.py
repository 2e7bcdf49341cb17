"""
The portable store (L{interface}): what export and import need beyond the
feature stores' own interfaces (issue 18 item 8).
"""
