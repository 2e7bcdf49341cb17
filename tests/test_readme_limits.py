"""
The README's "Limits and hardening" tables agree with the code (issue 15:
"the README lists every limit with its default").

- Every integer key of the configuration is a row of "Configurable limits"
  with its default, but for the few in L{NOT_LIMITS} (ports, caches, batch
  sizes), and every row names a real key with its real default.
- Every module-level C{MAX_*}/C{MIN_*} constant of the package is in "Fixed
  limits", and every value there is the constant's value.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pathlib
import re

from xmppchat import config

ROOT = pathlib.Path(__file__).resolve().parent.parent

#: integer keys that bound nothing a client can push on
NOT_LIMITS = {
    "c2s.port", "c2s.tls_port", "websocket.port", "bosh.port", "rest.port", "components.port", "ops.port",
    "storage.mongodb_pool_size",  # a pool size (listed as a related switch)
    "privacy.cache_size", "dialogs.account_cache_size",  # memory caches of server-side data
    "dialogs.fanout_batch",  # scheduling granularity
    "dialogs.mam_default_page", "muc.default_history_stanzas",  # defaults below a listed maximum
    "limits.idle_seconds",  # reserved, unused
    "push.retry_delay",  # a back-off step
    "cluster.heartbeat_seconds", "cluster.expiry_seconds",  # cluster liveness timing
    "ops.health_timeout_ms",  # how long /health waits for storage and Redis
}

#: C{MAX_*} names that are protocol value ranges, or the parser's defaults
#: for C{[limits] max_stanza_bytes} and C{max_depth} (listed as those keys)
NOT_FIXED_LIMITS = {"MAX_ORDER", "MAX_RID", "MAX_STANZA_BYTES", "MAX_DEPTH"}


def section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Limits and hardening\n")
    return readme[start:readme.index("\n### ", start + 1)]


def configurableRows() -> dict:
    rows = {}
    for match in re.finditer(r"^\| `\[(\w+)\]` `(\w+)` \| ([^|]+) \|", section(), re.M):
        rows[f"{match.group(1)}.{match.group(2)}"] = match.group(3).strip()
    return rows


def configDefaults() -> dict:
    defaults = {}
    for name, cls in config.SECTIONS.items():
        for f in dataclasses.fields(cls):
            if isinstance(f.default, int) and not isinstance(f.default, bool):
                defaults[f"{name}.{f.name}"] = f.default
    return defaults


def test_everyConfigurableLimitListedWithItsDefault():
    rows = configurableRows()
    defaults = configDefaults()
    missing = sorted(set(defaults) - set(rows) - NOT_LIMITS)
    assert not missing, f"README 'Configurable limits' lacks rows for {missing}"
    for key, cell in rows.items():
        assert key in defaults, f"README lists {key}, which is not an integer config key"
        assert int(cell) == defaults[key], f"README says {key} = {cell}, config.py {defaults[key]}"


def fixedRows() -> list[tuple[str, str, str]]:
    """
    (module, constant, value) for every constant named in "Fixed limits".
    """
    text = section()
    table = text[text.index("#### Fixed limits"):text.index("#### How they behave")]
    found = []
    for line in table.splitlines()[4:]:
        if not line.startswith("|"):
            continue
        _, _, values, where, _ = line.split("|")
        values = re.split(r" / | to ", values.strip())
        names, module = [], None
        for token in re.findall(r"`([^`]+)`", where):
            if token.endswith(".py"):
                module = token[:-3].replace("/", ".")
            else:
                names.append((module, token))
        assert len(names) == len(values), f"row {line!r}: {len(names)} constants, {len(values)} values"
        found += [(m, n, v) for (m, n), v in zip(names, values, strict=True)]
    return found


def test_fixedLimitsHaveTheirValues():
    rows = fixedRows()
    assert len(rows) > 40
    for module, name, value in rows:
        actual = getattr(importlib.import_module(module), name, None)
        assert actual is not None, f"README names {module}.{name}, which does not exist"
        assert actual == int(value), f"README says {module}.{name} = {value}, the code {actual}"


def test_everyFixedLimitListed():
    listed = {(m, n) for m, n, _ in fixedRows()}
    unlisted = []
    for path in sorted((ROOT / "xmppchat").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if re.fullmatch(r"(MAX|MIN)_[A-Z_]+", name) and name not in NOT_FIXED_LIMITS \
                        and (module, name) not in listed:
                    unlisted.append(f"{module}.{name}")
    assert not unlisted, f"README 'Fixed limits' lacks {unlisted}"
