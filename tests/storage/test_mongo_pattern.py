"""
Review 19 (B8 follow-up): a search text with a NUL reaches MongoDB as a
pattern without the NUL byte (the server refuses those: a 500 before),
still matching the text literally.
"""

from __future__ import annotations

import re

from xmppchat.storage.mongo import literalPattern


def test_patternHasNoNulByteAndMatchesLiterally():
    pattern = literalPattern("a\x00b.c*")
    assert "\x00" not in pattern
    assert re.search(pattern, "xa\x00b.c*y") and not re.search(pattern, "a\x00bxc")
