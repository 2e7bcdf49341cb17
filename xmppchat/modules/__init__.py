"""
Feature modules, one per file; L{knownModules} maps their names to classes.
"""

from __future__ import annotations

import importlib

# module name -> (python module, class name)
REGISTRY = {
    "tls": ("xmppchat.modules.tls", "TLSModule"),
    "saslauth": ("xmppchat.modules.saslauth", "SASLModule"),
    "bind": ("xmppchat.modules.bind", "BindModule"),
    "session": ("xmppchat.modules.bind", "SessionModule"),
    "limits": ("xmppchat.modules.limits", "LimitsModule"),
    "roster": ("xmppchat.modules.roster", "RosterModule"),
    "presence": ("xmppchat.modules.presence", "PresenceModule"),
    "offline": ("xmppchat.modules.offline", "OfflineModule"),
    "disco": ("xmppchat.modules.disco", "DiscoModule"),
    "ping": ("xmppchat.modules.ping", "PingModule"),
    "version": ("xmppchat.modules.version", "VersionModule"),
    "time": ("xmppchat.modules.time", "TimeModule"),
    "message": ("xmppchat.modules.message", "MessageModule"),
    "chatstates": ("xmppchat.modules.chatstates", "ChatStatesModule"),
    "markers": ("xmppchat.modules.markers", "MarkersModule"),
    "carbons": ("xmppchat.modules.carbons", "CarbonsModule"),
    "csi": ("xmppchat.modules.csi", "CSIModule"),
    "last": ("xmppchat.modules.last", "LastActivityModule"),
    "push": ("xmppchat.modules.push", "PushModule"),
    "smacks": ("xmppchat.modules.smacks", "SmacksModule"),
    "privacy": ("xmppchat.modules.privacy", "PrivacyModule"),
    "blocking": ("xmppchat.modules.blocking", "BlockingModule"),
    "muc": ("xmppchat.muc.service", "MUCModule"),
    "contactinfo": ("xmppchat.modules.contactinfo", "ContactInfoModule"),
    "extdisco": ("xmppchat.modules.extdisco", "ExtDiscoModule"),
    "dialogs": ("xmppchat.modules.dialogs", "DialogsModule"),
    "correction": ("xmppchat.modules.correction", "CorrectionModule"),
    "retraction": ("xmppchat.modules.retraction", "RetractionModule"),
    "reactions": ("xmppchat.modules.reactions", "ReactionsModule"),
    "mam": ("xmppchat.modules.mam", "MAMModule"),
    "ratelimit": ("xmppchat.modules.ratelimit", "RateLimitModule"),
    "pep": ("xmppchat.modules.pep", "PEPModule"),
    "upload": ("xmppchat.modules.upload", "UploadModule"),
    "vcard": ("xmppchat.modules.vcard", "VCardModule"),
    "private": ("xmppchat.modules.private", "PrivateModule"),
}


def knownModules() -> set[str]:
    return set(REGISTRY)


def moduleClass(name: str):
    path, className = REGISTRY[name]
    return getattr(importlib.import_module(path), className)
