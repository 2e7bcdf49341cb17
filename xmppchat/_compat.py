"""
Compatibility shim for wokkel 18.0.0 on Twisted 26.

wokkel 18.0.0 was released against older Twisted versions:

- ``wokkel.data_form``, ``wokkel.disco``, ``wokkel.ping`` and ``wokkel.pubsub``
  import ``twisted.python.compat._PY3``, which Twisted removed;
- ``wokkel.muc`` imports ``twisted.python.constants``, whose classes now live
  in the ``constantly`` package.

This module restores exactly those two names and nothing else.  It is imported
first by ``xmppchat/__init__.py`` so every later ``import wokkel.*`` works.
"""

import sys

import constantly
import twisted.python
import twisted.python.compat

if not hasattr(twisted.python.compat, "_PY3"):
    twisted.python.compat._PY3 = True

if "twisted.python.constants" not in sys.modules:
    sys.modules["twisted.python.constants"] = constantly
    twisted.python.constants = constantly
