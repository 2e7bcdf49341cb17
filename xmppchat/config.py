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

MAX_CONTACT_ADDRESSES = 10

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
    "message",
    "chatstates",
    "markers",
    "carbons",
    "csi",
    "last",
    "push",
    "smacks",
    "privacy",
    "blocking",
    "muc",
    "contactinfo",
    "extdisco",
    "dialogs",
    "correction",
    "retraction",
    "reactions",
    "mam",
    "ratelimit",
    "pep",
    "upload",
    "vcard",
    "private",
)


class ConfigError(Exception):
    """
    The configuration is unusable; C{problems} lists every reason, one line
    each, prefixed with the file and the dotted key: type errors and the
    checks across values together.
    """

    def __init__(self, problems: list[str], config: Config | None = None):
        Exception.__init__(self, "\n".join(problems))
        self.problems = problems
        # what could be built, values of the wrong type left at their
        # defaults: --check-config checks the rest of the deployment with it
        self.config = config


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
    # PROXY protocol v1/v2 from [limits] trusted_proxies (c2s/proxyprotocol.py)
    proxy_protocol: bool = False


@dataclass
class HTTPListenerConfig:
    """
    What the WebSocket and BOSH listeners share.
    """

    enabled: bool = False
    interface: str = "127.0.0.1"
    port: int = 0
    path: str = "/"
    tls: bool = False
    allowed_origins: list = field(default_factory=list)
    loopback_secure: bool = True


@dataclass
class WebSocketConfig(HTTPListenerConfig):
    port: int = 5291


@dataclass
class BOSHConfig(HTTPListenerConfig):
    port: int = 5280  # as documented; 5290 is the [ops] listener's
    path: str = "/http-bind"
    max_wait: int = 60
    max_hold: int = 1
    max_inactivity: int = 60
    max_body_bytes: int = 262144
    max_pending_bytes: int = 1048576
    max_sessions: int = 10000


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
    mongodb_timeout_ms: int = 5000
    # issue 15 finding 3: reads beside the SQLite writer, and a time limit
    # on queries (SQLite progress handler, MongoDB maxTimeMS; 0 = none)
    read_connections: int = 2
    query_timeout_ms: int = 2000


@dataclass
class LimitsConfig:
    max_stanza_bytes: int = 262144
    max_depth: int = 64
    idle_seconds: int = 600
    negotiation_seconds: int = 60
    ping_interval: int = 120
    ping_timeout: int = 60
    offline_messages_per_user: int = 1000
    offline_share_per_sender: int = 25
    offline_share_per_dialog: int = 25
    offline_share_dialogs: int = 50
    sessions_per_account: int = 50
    # live streams are checked against storage this often (issue 15 finding 4)
    session_recheck_seconds: int = 10
    failed_logins_free: int = 3
    failed_logins_lockout: int = 10
    failed_logins_lockout_seconds: int = 300
    failed_logins_per_source: int = 30
    failed_logins_per_account: int = 50
    status_subscriptions_per_session: int = 200
    csi_held_presences: int = 500
    directed_presences_per_session: int = 1000
    max_unsent_bytes: int = 1048576
    roster_items_per_user: int = 2000
    message_rate: int = 20
    message_burst: int = 60
    connections_per_ip: int = 200
    connection_rate_per_ip: int = 20
    connection_burst_per_ip: int = 100
    exempt_loopback: bool = False
    trusted_proxies: list = field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])


@dataclass
class PushConfig:
    notifier: str = "log"
    url: str = ""
    timeout: int = 10
    retries: int = 3
    retry_delay: int = 1
    queue_size: int = 1000
    concurrency: int = 4
    include_body: bool = True


@dataclass
class RestConfig:
    """
    The ConnectyCube-compatible REST side-service (L{xmppchat.api}).

    @ivar apps: at most one table (one tenant per server, issue 15
        finding 2): C{application_id} (int), C{auth_key} (str), optional
        C{jwt_secret} (str) for HS256 token users.
    """

    enabled: bool = False
    interface: str = "127.0.0.1"
    port: int = 8089
    public_url: str = ""
    max_body_bytes: int = 1048576
    cors_origins: list = field(default_factory=list)
    token_seconds: int = 7200
    max_app_sessions: int = 10000
    max_custom_data_bytes: int = 5120
    max_page: int = 100
    blob_max_bytes: int = 10485760
    data_classes: list = field(default_factory=list)
    apps: list = field(default_factory=list)
    http_bind: bool = True
    # request rate limits (xmppchat/api/ratelimit.py): token buckets, 0 = off
    token_rate_per_minute: int = 1200
    token_burst: int = 200
    address_rate_per_minute: int = 600
    address_burst: int = 100
    rate_limit_keys: int = 100000
    # what one list query may ask for (issue 15 findings 3, 14; api/json.py QueryLimits)
    max_filters: int = 20
    max_filter_values: int = 100
    max_filter_value_length: int = 1024


@dataclass
class SmacksConfig:
    """
    XEP-0198 stream management (C{modules/smacks.py}).
    """

    resume_timeout: int = 300
    max_unacked: int = 1000
    request_every: int = 5
    request_seconds: int = 30


@dataclass
class PrivacyConfig:
    max_lists: int = 32
    max_items: int = 1024
    max_name_length: int = 256
    cache_size: int = 10000
    blocklist_name: str = "@ConnectyCube/blockList"
    # who sees a user's last activity unless he chose (issue 17 item 4)
    last_seen_default: str = "contacts"


@dataclass
class DialogsConfig:
    """
    Dialog messaging over XMPP (L{xmppchat.modules.dialogs}, C{mam}).
    """

    account_cache_size: int = 10000
    # Issue 17 item 5: the dialog extension fields users may set (others
    # are ignored) and filter the dialog list on; at most
    # MAX_EXTENSION_FIELDS.  A field removed here is removed from every
    # dialog at the next start.
    extension_fields: list = field(default_factory=list)
    fanout_batch: int = 500
    broadcast_catchup_dialogs: int = 50
    broadcast_catchup_messages: int = 100
    mam_default_page: int = 50
    mam_max_page: int = 100
    # XEP-0313 for stock clients: archive 1-1 chat/normal messages with a
    # body that carry no ConnectyCube extraParams in the pair's private
    # dialog; an account archive query (no 'with') covers at most the
    # user's mam_max_dialogs most recently active dialogs.
    archive_chat: bool = True
    mam_max_dialogs: int = 500


@dataclass
class ClusterConfig:
    """
    Cluster mode (L{xmppchat.cluster}): on when C{redis_uri} is set.
    """

    redis_uri: str = ""
    node_id: str = ""
    heartbeat_seconds: int = 2
    expiry_seconds: int = 10
    key_prefix: str = "xmppchat"
    max_pending: int = 30000
    sm_queue_seconds: int = 3600


@dataclass
class MUCConfig:
    """
    XEP-0045 rooms (L{xmppchat.muc.room}).
    """

    connectycube_compat: bool = True
    max_rooms: int = 10000
    max_occupants: int = 1000
    max_rooms_per_user: int = 100
    rooms_opened_per_user: int = 20
    rooms_opened_per_ip: int = 100
    room_openings_per_minute: int = 10
    room_openings_burst: int = 20
    max_history_stanzas: int = 50
    default_history_stanzas: int = 20
    max_room_name: int = 200
    locked_room_seconds: int = 600
    # new rooms made by joining a new name (issue 16 item 5; Prosody's muc_room_default_*)
    room_default_members_only: bool = False
    room_default_public: bool = True
    room_default_persistent: bool = True
    room_default_moderated: bool = False


@dataclass
class QuotasConfig:
    """
    Per-user quotas (issue 15 finding 15, L{xmppchat.quotas}); 0 turns one
    off.  How parallel requests are bounded: see that module.
    """

    blobs_per_user: int = 1000
    blob_bytes_per_user: int = 1073741824
    records_per_user: int = 10000
    record_bytes_per_user: int = 16777216
    dialogs_per_user: int = 10000
    messages_per_user_per_day: int = 20000
    incomplete_upload_seconds: int = 86400
    sweep_seconds: int = 600
    # issue 16 items 2, 3: a user's vCard (XEP-0054) and private XML (XEP-0049)
    vcard_max_bytes: int = 131072
    private_max_bytes: int = 65536
    private_namespaces_per_user: int = 100


@dataclass
class ContactConfig:
    """
    XEP-0157 contact addresses (L{xmppchat.modules.contactinfo}): URIs
    (C{mailto:}, C{xmpp:}, C{https:}...) per kind, at most
    L{MAX_CONTACT_ADDRESSES} each.
    """

    abuse: list = field(default_factory=list)
    admin: list = field(default_factory=list)
    feedback: list = field(default_factory=list)
    sales: list = field(default_factory=list)
    security: list = field(default_factory=list)
    status: list = field(default_factory=list)
    support: list = field(default_factory=list)


@dataclass
class ExtDiscoConfig:
    """
    XEP-0215 external services (L{xmppchat.modules.extdisco}): tables of
    C{type} (stun, stuns, turn, turns), C{host}, optional C{port},
    C{transport} (udp, tcp), C{name}, and either a shared C{secret} for
    time-limited TURN credentials valid C{credentials_seconds}, or a
    static C{username} and C{password}.
    """

    services: list = field(default_factory=list)
    credentials_seconds: int = 86400


@dataclass
class PEPConfig:
    """
    XEP-0163 PEP (issue 16 item 1): per-user quotas and the entity caps
    cache (L{xmppchat.pep}).
    """

    max_nodes_per_user: int = 64
    max_items_per_node: int = 256
    max_item_bytes: int = 131072
    caps_cache_size: int = 2000


@dataclass
class UploadConfig:
    """
    XEP-0363 HTTP File Upload (L{xmppchat.modules.upload},
    L{xmppchat.api.upload}): the component's address, the URL base of its
    slots and its limits; the bytes count against C{[quotas]}.
    """

    domain: str = ""
    public_url: str = ""
    max_file_bytes: int = 10485760
    slot_seconds: int = 300
    slots_per_user: int = 10


@dataclass
class ComponentsConfig:
    """
    XEP-0114 external components (L{xmppchat.component}): the listener
    and the C{[[components.external]]} tables of C{domain} and C{secret}.
    """

    enabled: bool = False
    interface: str = "127.0.0.1"
    port: int = 5347
    external: list = field(default_factory=list)


@dataclass
class OpsConfig:
    """
    The operations listener (L{xmppchat.ops}, issue 18): metrics, health
    and the admin API; off by default, loopback when on.
    """

    enabled: bool = False
    interface: str = "127.0.0.1"
    port: int = 5290
    # the admin API's bearer key (xmppchat.ops.adminapi); none: the API is off
    admin_key: str = ""
    admin_key_file: str = ""
    # GET /health: milliseconds storage and Redis have to answer (xmppchat.ops.health)
    health_timeout_ms: int = 3000
    # the web admin panel at /admin/ (xmppchat.ops.panel, issue 19); needs an administrator
    panel: bool = False
    # [[ops.administrators]] name, password_hash (python -m xmppchat.admin hash-password)
    administrators: list = field(default_factory=list)
    panel_idle_minutes: int = 30         # a panel session unused this long is signed out
    panel_session_hours: int = 12        # and any panel session after this long
    panel_signin_failures: int = 5       # wrong passwords per address or name per window
    panel_signin_window_seconds: int = 900
    # HTTPS with the [tls] certificate of the c2s ports, reloaded with it (issue 19)
    tls: bool = False


@dataclass
class LogConfig:
    """
    The log (L{xmppchat.ops.logs}, issue 18 item 2): the lowest level
    written, per-namespace levels (C{{"xmppchat.c2s" = "debug"}}: a
    namespace and everything under it), C{text} or C{json} lines, and how
    often one rate limit's key is logged at most.
    """

    level: str = "info"
    levels: dict = field(default_factory=dict)
    format: str = "text"
    rate_limit_interval: int = 60


@dataclass
class ModerationConfig:
    """
    The admin panel's Moderation page (L{xmppchat.ops.admin.moderation},
    issue 19): the custom object classes (C{[rest] data_classes}) the apps
    store their users' reports in, and the fields naming what is reported,
    after the ConnectyCube docs' recipe (C{UserReports} with
    C{reportedUserId} and C{reason}, C{MessageReports} with
    C{reportedMessageId} and C{reason}).  C{handled_field} is the field the
    panel sets on a report it marks handled.
    """

    user_reports_class: str = "UserReports"
    reported_user_field: str = "reportedUserId"
    message_reports_class: str = "MessageReports"
    reported_message_field: str = "reportedMessageId"
    reported_dialog_field: str = "dialogId"
    reason_field: str = "reason"
    handled_field: str = "handled"


@dataclass
class ModulesConfig:
    enabled: list = field(default_factory=lambda: list(DEFAULT_MODULES))


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    c2s: C2SConfig = field(default_factory=C2SConfig)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    bosh: BOSHConfig = field(default_factory=BOSHConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    smacks: SmacksConfig = field(default_factory=SmacksConfig)
    modules: ModulesConfig = field(default_factory=ModulesConfig)
    push: PushConfig = field(default_factory=PushConfig)
    rest: RestConfig = field(default_factory=RestConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    dialogs: DialogsConfig = field(default_factory=DialogsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    muc: MUCConfig = field(default_factory=MUCConfig)
    quotas: QuotasConfig = field(default_factory=QuotasConfig)
    contact: ContactConfig = field(default_factory=ContactConfig)
    extdisco: ExtDiscoConfig = field(default_factory=ExtDiscoConfig)
    pep: PEPConfig = field(default_factory=PEPConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    components: ComponentsConfig = field(default_factory=ComponentsConfig)
    ops: OpsConfig = field(default_factory=OpsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    moderation: ModerationConfig = field(default_factory=ModerationConfig)
    source: str = "<defaults>"
    baseDir: str = "."

    @property
    def dataDir(self) -> str:
        return self.server.data_dir


SECTIONS = {
    "server": ServerConfig,
    "c2s": C2SConfig,
    "websocket": WebSocketConfig,
    "bosh": BOSHConfig,
    "tls": TLSConfig,
    "storage": StorageConfig,
    "limits": LimitsConfig,
    "smacks": SmacksConfig,
    "modules": ModulesConfig,
    "push": PushConfig,
    "rest": RestConfig,
    "privacy": PrivacyConfig,
    "dialogs": DialogsConfig,
    "cluster": ClusterConfig,
    "muc": MUCConfig,
    "quotas": QuotasConfig,
    "contact": ContactConfig,
    "extdisco": ExtDiscoConfig,
    "pep": PEPConfig,
    "upload": UploadConfig,
    "components": ComponentsConfig,
    "ops": OpsConfig,
    "log": LogConfig,
    "moderation": ModerationConfig,
}

_TYPES = {"int": int, "str": str, "bool": bool, "list": list, "dict": dict}


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
    _checkListener("c2s", config.c2s, ("port", "tls_port"), problem)
    _validateHTTPListeners(config, problem)
    if bool(config.tls.certificate) != bool(config.tls.private_key):
        problem("tls", "set both certificate and private_key, or neither (self-signed)")
    for key in ("certificate", "private_key", "chain"):
        path = getattr(config.tls, key)
        if path and not os.access(path, os.R_OK):
            problem(f"tls.{key}", f"cannot read {path}")
    if config.storage.backend not in ("sqlite", "mongodb"):
        problem("storage.backend", f"must be 'sqlite' or 'mongodb', not {config.storage.backend!r}")
    for key in ("mongodb_pool_size", "mongodb_timeout_ms"):
        if getattr(config.storage, key) < 1:
            problem(f"storage.{key}", "must be at least 1")
    for key in ("read_connections", "query_timeout_ms"):
        if getattr(config.storage, key) < 0:
            problem(f"storage.{key}", "must be 0 (off) or positive")
    for name in ("limits", "smacks"):
        section = getattr(config, name)
        for f in fields(section):
            if f.type != "list" and getattr(section, f.name) < 0:
                problem(f"{name}.{f.name}", "must not be negative")
    limits = config.limits
    if limits.message_rate and limits.message_burst < 1:
        problem("limits.message_burst", "must be at least 1 when message_rate is set")
    for key in ("offline_share_per_sender", "offline_share_per_dialog", "offline_share_dialogs"):
        if not 1 <= getattr(limits, key) <= 100:
            problem(f"limits.{key}", "must be a percentage of offline_messages_per_user, 1 to 100")
    if limits.max_stanza_bytes < 10000:
        problem("limits.max_stanza_bytes", "must be at least 10000 (RFC 6120 §13.12)")
    if not 1 <= limits.session_recheck_seconds <= 3600:
        problem("limits.session_recheck_seconds", "must be 1 to 3600 seconds")
    for key in ("failed_logins_lockout", "failed_logins_per_source", "failed_logins_per_account"):
        if getattr(limits, key) < 1:
            problem(f"limits.{key}", "must be at least 1")
    from xmppchat.clientaddress import parseNetworks

    try:
        parseNetworks(limits.trusted_proxies)
    except ValueError as e:
        problem("limits.trusted_proxies", f"{e} (like \"10.0.0.0/8\" or \"::1\")")
    push = config.push
    if push.notifier not in ("log", "webhook"):
        problem("push.notifier", f"must be 'log' or 'webhook', not {push.notifier!r}")
    elif push.notifier == "webhook" and not push.url.startswith(("http://", "https://")):
        problem("push.url", "the webhook notifier needs an http:// or https:// URL")
    for key in ("timeout", "retries", "retry_delay", "queue_size", "concurrency"):
        if getattr(push, key) < 0:
            problem(f"push.{key}", "must not be negative")
    if push.queue_size < 1 or push.concurrency < 1:
        problem("push", "queue_size and concurrency must be at least 1")
    _validateRest(config.rest, problem)
    _validateModeration(config.moderation, problem)
    if config.smacks.max_unacked < 1:
        problem("smacks.max_unacked", "must be at least 1")
    for key in ("max_lists", "max_items", "max_name_length", "cache_size"):
        if getattr(config.privacy, key) < 1:
            problem(f"privacy.{key}", "must be at least 1")
    if not 0 < len(config.privacy.blocklist_name) <= config.privacy.max_name_length:
        problem("privacy.blocklist_name", "must be a non-empty name within max_name_length")
    from xmppchat.privacysettings import VISIBILITIES

    if config.privacy.last_seen_default not in VISIBILITIES:
        problem("privacy.last_seen_default", f"must be one of {', '.join(map(repr, VISIBILITIES))},"
                f" not {config.privacy.last_seen_default!r}")
    for f in fields(config.pep):
        if getattr(config.pep, f.name) < 1:
            problem(f"pep.{f.name}", "must be at least 1")
    for f in fields(config.dialogs):
        if f.type not in ("list", "bool") and getattr(config.dialogs, f.name) < 1:
            problem(f"dialogs.{f.name}", "must be at least 1")
    _validateExtensionFields(config.dialogs.extension_fields, problem)
    if config.dialogs.mam_default_page > config.dialogs.mam_max_page:
        problem("dialogs.mam_default_page", "must not exceed dialogs.mam_max_page")
    _validateCluster(config.cluster, problem)
    for f in fields(config.muc):
        if f.type != "bool" and getattr(config.muc, f.name) < 1:
            problem(f"muc.{f.name}", "must be at least 1")
    if config.muc.default_history_stanzas > config.muc.max_history_stanzas:
        problem("muc.default_history_stanzas", "must not exceed muc.max_history_stanzas")
    _validateQuotas(config.quotas, problem)
    _validateUpload(config, problem)
    _validateComponents(config, problem)
    _checkListener("ops", config.ops, ("port",), problem)
    from xmppchat.ops.adminkey import keyProblem

    adminKey = keyProblem(config.ops, config.baseDir)
    if adminKey is not None:
        problem("ops.admin_key", adminKey)
    _validateLog(config.log, problem)
    if not 1 <= config.ops.health_timeout_ms <= 60000:
        problem("ops.health_timeout_ms", "must be between 1 and 60000 (a minute)")
    _validatePanel(config.ops, problem)
    _validateContact(config.contact, problem)
    _validateExtDisco(config.extdisco, problem)
    from xmppchat.modules import knownModules

    known = knownModules()
    for name in config.modules.enabled:
        if name not in known:
            problem("modules.enabled", f"unknown module {name!r} (known: {', '.join(sorted(known))})")


LOG_LEVELS = ("debug", "info", "warn", "error")


def _validateLog(log: LogConfig, problem) -> None:
    """
    C{[log]}: known levels, a namespace per level override, a known format.
    """
    names = ", ".join(map(repr, LOG_LEVELS))
    if log.level not in LOG_LEVELS:
        problem("log.level", f"must be one of {names}, not {log.level!r}")
    for namespace, level in log.levels.items():
        if not namespace or " " in namespace:
            problem("log.levels", f"not a namespace: {namespace!r} (like \"xmppchat.c2s\")")
        elif level not in LOG_LEVELS:
            problem(f"log.levels.{namespace}", f"must be one of {names}, not {level!r}")
    if log.format not in ("text", "json"):
        problem("log.format", f"must be 'text' or 'json', not {log.format!r}")
    if log.rate_limit_interval < 1:
        problem("log.rate_limit_interval", "must be at least 1 second")


# ConnectyCube's seed: "up to 3" extension fields per application; each
# is an index on the dialogs (issue 17 item 5).
MAX_EXTENSION_FIELDS = 3
# Names a REST list query reads as paging, never as a filter (also
# xmppchat.api.json PAGING): no dialog extension field may take one.
LIST_PARAMETERS = frozenset(("limit", "skip", "offset", "count", "sort_asc", "sort_desc", "page",
                             "per_page", "mark_as_read", "preview", "output"))
# the admin panel's dialog search parameters (xmppchat.ops.admin.dialogs
# LIST_PARAMS): a field named so could not be filtered there (review 19 A8)
ADMIN_SEARCH_PARAMETERS = frozenset(("q", "type", "user", "skip", "limit"))


def _validateExtensionFields(names: list, problem) -> None:
    """
    C{[dialogs] extension_fields}: at most L{MAX_EXTENSION_FIELDS} distinct
    stored key names (letters, digits, "_", "-") that are neither a dialog
    list parameter (a field of the dialog, paging; the admin panel's
    dialog search's own, L{ADMIN_SEARCH_PARAMETERS}) nor a key the server
    keeps in extensions itself.
    """
    from xmppchat.storage.common import DIALOG_SCHEMA, checkKey
    from xmppchat.storage.interfaces import DIALOG_SERVER_EXTENSIONS

    key = "dialogs.extension_fields"
    if len(names) > MAX_EXTENSION_FIELDS:
        problem(key, f"at most {MAX_EXTENSION_FIELDS} fields, not {len(names)}")
    if len(set(map(str, names))) != len(names):
        problem(key, "names a field twice")
    taken = (set(DIALOG_SCHEMA.fixed) | LIST_PARAMETERS | ADMIN_SEARCH_PARAMETERS
             | set(DIALOG_SERVER_EXTENSIONS)
             | {"extensions", "permissions", "occupants_count", "xmpp_room_jid",
                "unread_messages_count", "last_message_status"})
    for name in names:
        try:
            checkKey(name, "extension field")
        except ValueError as e:
            problem(key, str(e))
            continue
        if name in taken:
            problem(key, f"{name!r} is a dialog field, a list parameter or a key of the server's own")


def _tables(name: str, tables: list, known: dict, problem):
    """
    The tables of the array-of-tables key C{name} as C{(key, table)}
    pairs, after reporting entries that are not tables (left out) and
    unknown keys or values of the wrong type (C{known}: key -> type).
    """
    for i, table in enumerate(tables):
        key = f"{name}[{i}]"
        if not isinstance(table, dict):
            problem(key, "must be a table")
            continue
        for entry, value in table.items():
            expected = known.get(entry)
            if expected is None:
                problem(f"{key}.{entry}", f"unknown key (known: {', '.join(known)})")
            elif not _checkType(value, expected.__name__):
                problem(f"{key}.{entry}", f"expected {expected.__name__}, got {type(value).__name__}")
        yield key, table


ADMINISTRATOR_KEYS = {"name": str, "password_hash": str}


def _isLoopback(interface: str) -> bool:
    import ipaddress

    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def _validatePanel(ops: OpsConfig, problem) -> None:
    """
    C{[ops]} panel keys and the C{[[ops.administrators]]} tables (issue
    19): unique names of the panel's name rules, hashes in the format of
    L{xmppchat.ops.panel.auth.hashPassword}.
    """
    from xmppchat.ops.panel.auth import NAME_RULE, hashProblem

    for key, low, high in (("panel_idle_minutes", 1, 24 * 60), ("panel_session_hours", 1, 24 * 30),
                           ("panel_signin_failures", 1, 1000),
                           ("panel_signin_window_seconds", 1, 24 * 3600)):
        if not low <= getattr(ops, key) <= high:
            problem(f"ops.{key}", f"must be between {low} and {high}")
    names = set()
    for key, table in _tables("ops.administrators", ops.administrators, ADMINISTRATOR_KEYS, problem):
        name = table.get("name")
        if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
            problem(f"{key}.name", "required: 1 to 64 letters, digits, '.', '_' or '-'")
        elif name in names:
            problem(f"{key}.name", f"{name!r} is listed twice")
        names.add(name)
        trouble = hashProblem(table.get("password_hash"))
        if trouble:
            problem(f"{key}.password_hash", trouble)
    if ops.panel and not ops.administrators:
        problem("ops.panel", "the panel needs at least one [[ops.administrators]] table")
    if ops.panel and not ops.tls and not _isLoopback(ops.interface):
        # passwords and session cookies would cross the network in clear (review 19 #4)
        problem("ops.panel", f"the panel on {ops.interface!r} needs ops.tls = true"
                " (or keep ops.interface on loopback, behind a TLS proxy)")


def _validateContact(contact: ContactConfig, problem) -> None:
    """
    C{[contact]}: lists of URIs (XEP-0157 §2).
    """
    import re

    for f in fields(contact):
        addresses = getattr(contact, f.name)
        if len(addresses) > MAX_CONTACT_ADDRESSES:
            problem(f"contact.{f.name}", f"at most {MAX_CONTACT_ADDRESSES} addresses")
        for address in addresses:
            if not isinstance(address, str) or len(address) > 1024 \
                    or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:\S+", address):
                problem(f"contact.{f.name}", f"not a URI like 'mailto:abuse@example.com': {address!r}")


def _validateExtDisco(extdisco: ExtDiscoConfig, problem) -> None:
    """
    C{[extdisco]}: the C{[[extdisco.services]]} tables (XEP-0215).
    """
    from xmppchat.modules.extdisco import SERVICE_KEYS, SERVICE_TYPES

    if extdisco.credentials_seconds < 60:
        problem("extdisco.credentials_seconds", "must be at least 60")
    for key, service in _tables("extdisco.services", extdisco.services, SERVICE_KEYS, problem):
        if service.get("type") not in SERVICE_TYPES:
            problem(f"{key}.type", f"required, one of {', '.join(SERVICE_TYPES)}")
        if not isinstance(service.get("host"), str) or not service.get("host"):
            problem(f"{key}.host", "required, a host name or address")
        port = service.get("port", 1)
        if not isinstance(port, int) or not 1 <= port <= 65535:
            problem(f"{key}.port", "must be 1 to 65535")
        if service.get("transport", "udp") not in ("udp", "tcp"):
            problem(f"{key}.transport", "must be 'udp' or 'tcp'")
        if "secret" in service and ("username" in service or "password" in service):
            problem(key, "give a secret or a username and password, not both")
        if ("username" in service) != ("password" in service):
            problem(key, "give both username and password")


def _validateQuotas(quotas: QuotasConfig, problem) -> None:
    """
    The C{[quotas]} section: counts and bytes are 0 (off) or positive; an
    incomplete upload lives at least twice the upload window the REST API
    advertises, so the sweep never races an upload in progress.
    """
    from xmppchat.quotas import UPLOAD_SECONDS

    for f in fields(quotas):
        if getattr(quotas, f.name) < 0:
            problem(f"quotas.{f.name}", "must be 0 (no limit) or positive")
    if quotas.incomplete_upload_seconds < 2 * UPLOAD_SECONDS:
        problem("quotas.incomplete_upload_seconds", f"must be at least {2 * UPLOAD_SECONDS}")
    if quotas.sweep_seconds < 1:
        problem("quotas.sweep_seconds", "must be at least 1")


def _validateCluster(cluster: ClusterConfig, problem) -> None:
    if cluster.redis_uri:
        from xmppchat.cluster.resp import parseRedisURI

        try:
            parseRedisURI(cluster.redis_uri)
        except ValueError as e:
            problem("cluster.redis_uri", f"{e} (like redis://127.0.0.1:6379/0)")
    if cluster.node_id and (len(cluster.node_id) > 100 or not cluster.node_id.isprintable()
                            or any(c.isspace() for c in cluster.node_id)):
        problem("cluster.node_id", "must be printable, without spaces, at most 100 characters")
    if cluster.heartbeat_seconds < 1:
        problem("cluster.heartbeat_seconds", "must be at least 1")
    if cluster.expiry_seconds < 2 * cluster.heartbeat_seconds:
        problem("cluster.expiry_seconds", "must be at least twice heartbeat_seconds")
    if not cluster.key_prefix or ":" in cluster.key_prefix:
        problem("cluster.key_prefix", "must be a non-empty name without ':'")
    if cluster.max_pending < 1:
        problem("cluster.max_pending", "must be at least 1")
    if cluster.sm_queue_seconds and cluster.sm_queue_seconds < 2 * cluster.expiry_seconds:
        problem("cluster.sm_queue_seconds", "must be 0 (off) or at least twice expiry_seconds")


def uploadDomain(config: Config) -> str:
    """
    The XEP-0363 component's domain: C{[upload] domain}, else
    C{upload.<domain>}.
    """
    return config.upload.domain or "upload." + config.server.domain


def _validateUpload(config: Config, problem) -> None:
    """
    The C{[upload]} section (XEP-0363): a bare domain other than the
    server's and the MUC service's (C{upload.<domain>} when empty), an
    http(s) URL base, positive limits.
    """
    from xmppchat.jid import InvalidJID, parseJID

    upload = config.upload
    try:
        parsed = parseJID(uploadDomain(config))
    except InvalidJID as e:
        problem("upload.domain", f"not a valid domain: {e}")
    else:
        if parsed.user is not None or parsed.resource is not None:
            problem("upload.domain", "must be a bare domain name")
        elif uploadDomain(config) in (config.server.domain, config.server.muc_domain):
            problem("upload.domain", "must differ from server.domain and server.muc_domain")
    if upload.public_url and not upload.public_url.startswith(("http://", "https://")):
        problem("upload.public_url", "must be an http:// or https:// URL")
    for key in ("max_file_bytes", "slot_seconds", "slots_per_user"):
        if getattr(upload, key) < 1:
            problem(f"upload.{key}", "must be at least 1")


COMPONENT_KEYS = {"domain": str, "secret": str}
MIN_COMPONENT_SECRET = 16


def _validateComponents(config: Config, problem) -> None:
    """
    C{[components]} (XEP-0114): a listener and, when it is enabled, at
    least one C{[[components.external]]} table with a bare C{domain}
    (not the server's, the MUC service's or the upload service's, and
    each once) and a C{secret} of at least L{MIN_COMPONENT_SECRET}
    characters.  A component connects to one process, so not in cluster
    mode.  Secrets never appear in these messages.
    """
    from xmppchat.jid import InvalidJID, parseJID

    components = config.components
    _checkListener("components", components, ("port",), problem)
    taken = {config.server.domain, config.server.muc_domain, uploadDomain(config)}
    for key, table in _tables("components.external", components.external, COMPONENT_KEYS, problem):
        domain = table.get("domain")
        try:
            parsed = parseJID(domain) if isinstance(domain, str) else None
        except InvalidJID:
            parsed = None
        if parsed is None or parsed.user is not None or parsed.resource is not None \
                or parsed.host != domain:
            problem(f"{key}.domain", "required, a bare lower-case domain like 'bot.example.com'")
        elif domain in taken:
            problem(f"{key}.domain", f"{domain!r} is already served (the server, MUC, upload"
                    " or another component)")
        else:
            taken.add(domain)
        secret = table.get("secret")
        if not isinstance(secret, str) or len(secret) < MIN_COMPONENT_SECRET:
            problem(f"{key}.secret", f"required, at least {MIN_COMPONENT_SECRET} characters")
    if components.enabled and not components.external:
        problem("components.external", "the listener is enabled but no component is configured")
    if components.enabled and config.cluster.redis_uri:
        problem("components.enabled", "external components need a single process: not with"
                " [cluster] redis_uri (nor --workers)")


def _checkListener(name: str, section, portKeys, problem) -> None:
    """
    A listener's C{interface} (an IP address, C{localhost} or empty for
    all) and its ports (0, ephemeral, to 65535).
    """
    try:
        ipaddress.ip_address(section.interface)
    except ValueError:
        if section.interface not in ("", "localhost"):
            problem(f"{name}.interface", f"not an IP address: {section.interface!r}")
    for key in portKeys:
        value = getattr(section, key)
        if not 0 <= value <= 65535:
            problem(f"{name}.{key}", f"port out of range: {value}")


def _validateHTTPListeners(config: Config, problem) -> None:
    """
    The C{[websocket]} and C{[bosh]} listeners.
    """
    for name in ("websocket", "bosh"):
        section = getattr(config, name)
        _checkListener(name, section, ("port",), problem)
        if not section.path.startswith("/"):
            problem(f"{name}.path", f"must start with '/': {section.path!r}")
        if not all(isinstance(origin, str) for origin in section.allowed_origins):
            problem(f"{name}.allowed_origins", "must be a list of strings like 'https://app.example.com'")
    bosh = config.bosh
    for key in ("max_wait", "max_hold", "max_inactivity", "max_sessions"):
        if getattr(bosh, key) < 1:
            problem(f"bosh.{key}", "must be at least 1")
    if bosh.max_body_bytes < 10000:
        problem("bosh.max_body_bytes", "must be at least 10000")
    if bosh.max_pending_bytes < bosh.max_body_bytes:
        problem("bosh.max_pending_bytes", "must be at least max_body_bytes")
APP_KEYS = {"application_id": int, "auth_key": str, "jwt_secret": str}
CLASS_NAME = r"[A-Za-z][A-Za-z0-9_]{0,63}"  # a custom object class ([rest] data_classes)


def _validateRest(rest: RestConfig, problem) -> None:
    """
    The C{[rest]} section: port, limits, CORS origins, custom data class
    names and the C{[[rest.apps]]} tables.
    """
    import re

    _checkListener("rest", rest, ("port",), problem)
    for key in ("max_body_bytes", "token_seconds", "max_app_sessions", "max_custom_data_bytes",
                "max_page", "blob_max_bytes"):
        if getattr(rest, key) < 1:
            problem(f"rest.{key}", "must be positive")
    for key in ("token_rate_per_minute", "address_rate_per_minute"):
        if getattr(rest, key) < 0:
            problem(f"rest.{key}", "must be 0 (no limit) or positive")
    for key in ("token_burst", "address_burst", "rate_limit_keys", "max_filters",
                "max_filter_values", "max_filter_value_length"):
        if getattr(rest, key) < 1:
            problem(f"rest.{key}", "must be positive")
    for origin in rest.cors_origins:
        if not isinstance(origin, str) or not origin:
            problem("rest.cors_origins", f"expected origin strings like 'https://app.example.com' or '*', got {origin!r}")
    for name in rest.data_classes:
        if not isinstance(name, str) or not re.fullmatch(CLASS_NAME, name):
            problem("rest.data_classes", f"not a class name: {name!r}")
    if len(rest.apps) > 1:
        # Issue 15 finding 2: accounts, dialogs, messages, blobs and records
        # carry no application, so two applications would share them all.
        problem("rest.apps", f"{len(rest.apps)} applications configured: one server serves one"
                " application (the data carries no application boundary); run one server"
                " per application")
    seen = set()
    for key, app in _tables("rest.apps", rest.apps, APP_KEYS, problem):
        appId = app.get("application_id")
        if not isinstance(appId, int) or isinstance(appId, bool) or appId < 1:
            problem(f"{key}.application_id", "required, a positive integer")
        elif appId in seen:
            problem(f"{key}.application_id", f"duplicate application id {appId}")
        else:
            seen.add(appId)
        if not isinstance(app.get("auth_key"), str) or not app.get("auth_key"):
            problem(f"{key}.auth_key", "required, a non-empty string")
        secret = app.get("jwt_secret")
        if isinstance(secret, str) and len(secret) < 16:
            problem(f"{key}.jwt_secret", "must be at least 16 characters")


def _validateModeration(moderation: ModerationConfig, problem) -> None:
    """
    C{[moderation]}: two different class names, and field names a record
    may hold (not its own C{_id}, C{user_id}...), all different.
    """
    import re

    from xmppchat.storage.common import RECORD_RESERVED, checkKey

    classes = ("user_reports_class", "message_reports_class")
    for key in classes:
        if not re.fullmatch(CLASS_NAME, getattr(moderation, key)):
            problem(f"moderation.{key}", f"not a class name: {getattr(moderation, key)!r}")
    if moderation.user_reports_class == moderation.message_reports_class:
        problem("moderation.message_reports_class", "must differ from user_reports_class")
    seen: dict = {}
    for f in fields(moderation):
        name = getattr(moderation, f.name)
        if f.name in classes:
            continue
        try:
            checkKey(name, "record field")
        except ValueError as e:
            problem(f"moderation.{f.name}", str(e))
            continue
        if name in RECORD_RESERVED:
            problem(f"moderation.{f.name}", f"{name!r} is a record's own field, not a report's")
        elif name in seen:
            problem(f"moderation.{f.name}", f"the same field as moderation.{seen[name]}")
        seen.setdefault(name, f.name)


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
    if config.ops.admin_key_file:
        config.ops.admin_key_file = os.path.abspath(os.path.join(base, config.ops.admin_key_file))


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
    # with values of the wrong type left at their defaults, so that one pass
    # reports every problem (issue 18 item 7)
    _validate(config, problem)
    _resolve(config)
    if problems:
        raise ConfigError(problems, config)
    return config


def settingProblems(config: Config, key: str, value: Any) -> list[str]:
    """
    What L{buildConfig} would say of C{value} for the dotted C{key} (like
    C{"dialogs.extension_fields"}) in a file that is C{config} otherwise:
    its type, then every check of L{_validate} on a copy of C{config}
    holding C{value}, keeping the problems of C{key} (and of its entries:
    C{"rest.apps[0].auth_key"}).  The admin panel's run-time settings
    (issue 19, L{xmppchat.runsettings}) are checked this way, never by a
    second copy of the rules.
    """
    from dataclasses import replace

    sectionName, _, name = key.partition(".")
    section = getattr(config, sectionName)
    typeName = {f.name: f.type for f in fields(section)}[name]
    if not _checkType(value, typeName):
        return [f"expected {typeName}, got {type(value).__name__}"]
    candidate = replace(config, **{sectionName: replace(section, **{name: value})})
    problems: list[str] = []

    def problem(where, message):
        if where == key or where.startswith((key + ".", key + "[")):
            problems.append(f"{where}: {message}" if where != key else message)

    _validate(candidate, problem)
    return problems


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
