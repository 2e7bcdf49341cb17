"""
Configuration: a TOML file (stdlib ``tomllib``) turned into validated dataclasses.

Every problem is collected (not just the first) and reported with its file and
key, so ``twistd xmppchat --check-config FILE`` can print them all at once.
Relative paths are resolved against the directory the server is started from;
``data_dir`` holds the embedded database, the generated self-signed
certificate and uploaded files.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_CONFIG = os.path.join("conf", "xmppchat.dev.toml")

DEFAULT_MODULES = (
    "tls",
    "saslauth",
    "bind",
    "session",
    "limits",
    "roster",
    "presence",
    "offline",
    "disco",
    "ping",
    "version",
    "time",
    "ratelimit",
)


class ConfigError(Exception):
    """
    The configuration is unusable; C{problems} lists every reason, one line
    each, prefixed with the file and the dotted key.
    """

    def __init__(self, problems: list[str]):
        Exception.__init__(self, "\n".join(problems))
        self.problems = problems


@dataclass
class ServerConfig:
    domain: str = "localhost"
    muc_domain: str = ""
    data_dir: str = "xmppchat-data"
    name: str = "xmppchat"

    def __post_init__(self):
        if not self.muc_domain:
            self.muc_domain = "muc." + self.domain


@dataclass
class C2SConfig:
    interface: str = "127.0.0.1"
    port: int = 5222
    tls_port: int = 5223
    direct_tls: bool = True
    starttls_required: bool = True
    allow_plain_without_tls_on_loopback: bool = False
    log_traffic: bool = False


@dataclass
class TLSConfig:
    certificate: str = ""
    private_key: str = ""
    chain: str = ""


@dataclass
class StorageConfig:
    backend: str = "sqlite"
    path: str = "xmppchat.sqlite3"
    mongodb_uri: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = "xmppchat"
    mongodb_pool_size: int = 8


@dataclass
class LimitsConfig:
    max_stanza_bytes: int = 262144
    max_depth: int = 64
    idle_seconds: int = 600
    negotiation_seconds: int = 60
    ping_interval: int = 120
    ping_timeout: int = 60
    offline_messages_per_user: int = 1000
    sessions_per_account: int = 50
    failed_logins_free: int = 3
    failed_logins_lockout: int = 10
    failed_logins_lockout_seconds: int = 300
    message_rate: int = 20
    message_burst: int = 60
    connections_per_ip: int = 200
    connection_rate_per_ip: int = 20
    connection_burst_per_ip: int = 100
    exempt_loopback: bool = False


@dataclass
class ModulesConfig:
    enabled: list = field(default_factory=lambda: list(DEFAULT_MODULES))


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    c2s: C2SConfig = field(default_factory=C2SConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    modules: ModulesConfig = field(default_factory=ModulesConfig)
    source: str = "<defaults>"
    baseDir: str = "."

    @property
    def dataDir(self) -> str:
        return self.server.data_dir


SECTIONS = {
    "server": ServerConfig,
    "c2s": C2SConfig,
    "tls": TLSConfig,
    "storage": StorageConfig,
    "limits": LimitsConfig,
    "modules": ModulesConfig,
}

_TYPES = {"int": int, "str": str, "bool": bool, "list": list}


def _checkType(value: Any, typeName: str) -> bool:
    expected = _TYPES[typeName]
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _validate(config: Config, problem) -> None:
    """
    Cross-field checks that the types alone do not express.
    """
    from xmppchat.jid import InvalidJID, parseJID

    for key in ("domain", "muc_domain"):
        value = getattr(config.server, key)
        try:
            parsed = parseJID(value)
        except InvalidJID as e:
            problem(f"server.{key}", f"not a valid domain: {e}")
        else:
            if parsed.user is not None or parsed.resource is not None:
                problem(f"server.{key}", "must be a bare domain name")
    try:
        ipaddress.ip_address(config.c2s.interface)
    except ValueError:
        if config.c2s.interface not in ("", "localhost"):
            problem("c2s.interface", f"not an IP address: {config.c2s.interface!r}")
    for key in ("port", "tls_port"):
        value = getattr(config.c2s, key)
        if not 0 <= value <= 65535:
            problem(f"c2s.{key}", f"port out of range: {value}")
    if bool(config.tls.certificate) != bool(config.tls.private_key):
        problem("tls", "set both certificate and private_key, or neither (self-signed)")
    for key in ("certificate", "private_key", "chain"):
        path = getattr(config.tls, key)
        if path and not os.access(path, os.R_OK):
            problem(f"tls.{key}", f"cannot read {path}")
    if config.storage.backend not in ("sqlite", "mongodb"):
        problem("storage.backend", f"must be 'sqlite' or 'mongodb', not {config.storage.backend!r}")
    limits = config.limits
    for f in fields(limits):
        if getattr(limits, f.name) < 0:
            problem(f"limits.{f.name}", "must not be negative")
    if limits.message_rate and limits.message_burst < 1:
        problem("limits.message_burst", "must be at least 1 when message_rate is set")
    if limits.max_stanza_bytes < 10000:
        problem("limits.max_stanza_bytes", "must be at least 10000 (RFC 6120 §13.12)")
    from xmppchat.modules import knownModules

    known = knownModules()
    for name in config.modules.enabled:
        if name not in known:
            problem("modules.enabled", f"unknown module {name!r} (known: {', '.join(sorted(known))})")


def _resolve(config: Config) -> None:
    """
    Make paths absolute: data_dir against the base directory, the database and
    TLS files against data_dir / the base directory.
    """
    base = config.baseDir
    config.server.data_dir = os.path.abspath(os.path.join(base, config.server.data_dir))
    if config.storage.path != ":memory:":
        config.storage.path = os.path.join(config.server.data_dir, config.storage.path)
    for key in ("certificate", "private_key", "chain"):
        value = getattr(config.tls, key)
        if value:
            setattr(config.tls, key, os.path.abspath(os.path.join(base, value)))


def buildConfig(data: dict, source: str = "<dict>", baseDir: str = ".") -> Config:
    """
    Turn parsed TOML into a L{Config}, raising L{ConfigError} with every
    problem found.
    """
    problems: list[str] = []

    def problem(key, message):
        problems.append(f"{source}: {key}: {message}")

    sections = {}
    for name, value in data.items():
        cls = SECTIONS.get(name)
        if cls is None:
            problem(name, f"unknown section (known: {', '.join(SECTIONS)})")
            continue
        if not isinstance(value, dict):
            problem(name, "must be a table")
            continue
        kwargs = {}
        types = {f.name: f.type for f in fields(cls)}
        for key, item in value.items():
            if key not in types:
                problem(f"{name}.{key}", f"unknown key (known: {', '.join(types)})")
            elif not _checkType(item, types[key]):
                problem(f"{name}.{key}", f"expected {types[key]}, got {type(item).__name__}")
            else:
                kwargs[key] = item
        sections[name] = cls(**kwargs)
    config = Config(**sections, source=source, baseDir=baseDir)
    if not problems:
        _validate(config, problem)
    if problems:
        raise ConfigError(problems)
    _resolve(config)
    return config


def loadConfig(path: str | None = None, baseDir: str | None = None) -> Config:
    """
    Read a TOML configuration file.  C{None} means the dev config
    (C{conf/xmppchat.dev.toml} under the current directory) if present,
    otherwise built-in defaults.  Relative paths in the file are resolved
    against C{baseDir} (default: the current directory).
    """
    base = os.getcwd() if baseDir is None else baseDir
    if path is None:
        path = DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None
    if path is None:
        return buildConfig({}, "<defaults>", base)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path}: not valid TOML: {e}"]) from None
    return buildConfig(data, path, base)
