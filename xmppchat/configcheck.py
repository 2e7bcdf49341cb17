"""
What C{twistd xmppchat --check-config FILE} checks beyond the file itself
(issue 18 item 7): the deployment it describes.

Errors (the server would not start, or would serve what clients refuse):
the TLS key does not fit the certificate; the certificate has expired or
is not valid yet; it names neither C{domain} nor C{muc_domain} (nor the
upload service's domain when that is served), as DNS-IDs of its
subjectAltName or, without any, its common name, wildcards matching one
left-most label (RFC 6125 §6.4, RFC 7590 §3.2: clients check the domain
they connect to); the data directory cannot be written or created.

Warnings (exit code 0): the certificate expires within
L{EXPIRY_WARNING_DAYS} days, and settings meant for the dev config and
benchmarks in a config for a real domain: C{[limits] exempt_loopback},
message or REST rates far above the defaults (or off), CORS C{*}.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from dataclasses import fields

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from xmppchat.config import Config, LimitsConfig, RestConfig, uploadDomain

EXPIRY_WARNING_DAYS = 14
#: a rate this many times its default is a benchmark setting
HUGE_RATE_FACTOR = 10
#: domains no public server has (RFC 6761 special-use names): dev configs
DEV_SUFFIXES = ("localhost", ".localhost", ".test", ".example", ".invalid")


def checkDeployment(config: Config, now: datetime.datetime | None = None) -> tuple[list, list]:
    """
    The problems and warnings of C{config}'s deployment, each line
    prefixed with the file and key like L{xmppchat.config.ConfigError}'s.
    """
    errors: list[str] = []
    warnings: list[str] = []

    def error(key, message):
        errors.append(f"{config.source}: {key}: {message}")

    def warning(key, message):
        warnings.append(f"{config.source}: {key}: warning: {message}")

    now = now or datetime.datetime.now(datetime.timezone.utc)
    _checkCertificate(config, now, error, warning)
    reason = unwritable(config.server.data_dir)
    if reason:
        error("server.data_dir", reason)
    if not isDev(config):
        _checkDevSettings(config, warning)
    return errors, warnings


def servedDomains(config: Config) -> list[str]:
    """
    The domains clients reach over TLS: the server's, the MUC service's,
    the upload service's when it is served (module on, REST listener on).
    """
    domains = [config.server.domain, config.server.muc_domain]
    if "upload" in config.modules.enabled and config.rest.enabled:
        domains.append(uploadDomain(config))
    return domains


def _checkCertificate(config: Config, now, error, warning) -> None:
    tls = config.tls
    if not (tls.certificate and tls.private_key):
        return  # self-signed, generated for the served names at first start
    try:
        with open(tls.certificate, "rb") as f:
            certificate = x509.load_pem_x509_certificate(f.read())
        with open(tls.private_key, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
    except (OSError, ValueError, TypeError) as e:
        error("tls", f"cannot load the certificate and key: {e}")
        return
    if _publicBytes(key.public_key()) != _publicBytes(certificate.public_key()):
        error("tls.private_key", f"{tls.private_key} does not fit the certificate {tls.certificate}")
    notAfter = certificate.not_valid_after_utc
    if notAfter <= now:
        error("tls.certificate", f"expired on {notAfter:%Y-%m-%d %H:%M} UTC")
    elif notAfter - now <= datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        warning("tls.certificate", f"expires on {notAfter:%Y-%m-%d %H:%M} UTC,"
                f" in {(notAfter - now).days} day(s)")
    if certificate.not_valid_before_utc > now:
        error("tls.certificate", f"not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    names = certificateNames(certificate)
    for domain in servedDomains(config):
        if not any(nameMatches(name, domain) for name in names):
            error("tls.certificate", f"does not cover {domain!r} (it names {', '.join(names) or 'nothing'})")


def _publicBytes(publicKey) -> bytes:
    return publicKey.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)


def certificateNames(certificate) -> list[str]:
    """
    The DNS-IDs of C{certificate}'s subjectAltName, or its common names
    when it has none (RFC 6125 §6.4.4).
    """
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return san.value.get_values_for_type(x509.DNSName)


def nameMatches(name: str, domain: str) -> bool:
    """
    Whether the certificate name C{name} covers C{domain}: equal ignoring
    case, or C{*.rest} for one left-most label (RFC 6125 §6.4.3).
    """
    name, domain = name.lower().rstrip("."), domain.lower().rstrip(".")
    if name.startswith("*."):
        label, _, rest = domain.partition(".")
        return bool(label) and rest == name[2:]
    return name == domain


def unwritable(directory: str) -> str:
    """
    Why files cannot be created in C{directory} (or it cannot be created),
    or C{""}: a real probe where it exists (file modes, read-only mounts
    and immutable directories alike).
    """
    if os.path.isdir(directory):
        try:
            with tempfile.TemporaryFile(dir=directory):
                return ""
        except OSError as e:
            return f"cannot write in {directory}: {e.strerror}"
    if os.path.exists(directory):
        return f"{directory} is not a directory"
    parent = os.path.dirname(directory)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {directory}: {parent} is not writable"
    return ""


def isDev(config: Config) -> bool:
    """
    A dev or test config: its domain cannot be public (RFC 6761), or it is
    a C{*.dev.toml} file.
    """
    domain = config.server.domain.lower()
    return domain.endswith(DEV_SUFFIXES) or config.source.endswith(".dev.toml")


def _default(cls, name):
    return next(f.default for f in fields(cls) if f.name == name)


def _checkDevSettings(config: Config, warning) -> None:
    if config.limits.exempt_loopback:
        warning("limits.exempt_loopback", "no per-IP limits for loopback (dev config and benchmarks);"
                " behind a local proxy every client is exempt")
    rates = [("limits", LimitsConfig, key) for key in ("message_rate", "message_burst")]
    rates += [("rest", RestConfig, key) for key in ("token_rate_per_minute", "address_rate_per_minute")]
    for section, cls, key in rates:
        value, default = getattr(getattr(config, section), key), _default(cls, key)
        if value == 0 and not key.endswith("burst"):
            warning(f"{section}.{key}", "0: no limit (dev config and benchmarks)")
        elif value > HUGE_RATE_FACTOR * default:
            warning(f"{section}.{key}", f"{value} is more than {HUGE_RATE_FACTOR} times the default"
                    f" {default} (dev config and benchmarks)")
    if "*" in config.rest.cors_origins:
        warning("rest.cors_origins", "'*': any web page may call the REST API (dev only)")
