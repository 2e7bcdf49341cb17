"""
Issue 18 item 7: C{--check-config} reports every problem in one pass, type
errors and value checks together, and checks the deployment: the key fits
the certificate, the certificate is valid now and for a while, it names
the served domains, the data directory is writable; dev-only settings in
a config for a real domain are warnings.  C{twistd xmppchat --version}
names xmppchat.
"""

from __future__ import annotations

import datetime
import io

import pytest

from tests.helpers import readOnlyDirectory
from xmppchat.certs import makeCertificate
from xmppchat.config import buildConfig
from xmppchat.tap import Options, checkConfig

NOW = datetime.datetime.now(datetime.timezone.utc)


def writeConfig(tmp_path, body: str = "", names=("chat.example.org", "muc.chat.example.org"),
                **certificate) -> str:
    """
    A config for chat.example.org with a certificate for C{names}
    (C{makeCertificate} keyword arguments in C{certificate}); returns its path.
    """
    keyPEM, certPEM = makeCertificate(list(names), **certificate)
    (tmp_path / "server.key").write_bytes(keyPEM)
    (tmp_path / "server.crt").write_bytes(certPEM)
    path = tmp_path / "c.toml"
    path.write_text(f"""
[server]
domain = "chat.example.org"
data_dir = "{tmp_path / 'data'}"

[tls]
certificate = "{tmp_path / 'server.crt'}"
private_key = "{tmp_path / 'server.key'}"
{body}
""")
    return str(path)


def check(path: str) -> tuple[int, str]:
    out = io.StringIO()
    return checkConfig(path, out), out.getvalue()


def test_typeErrorsAndValueChecksTogether(tmp_path):
    """A type error no longer hides the value problems of other keys: all come in one pass."""
    path = tmp_path / "c.toml"
    path.write_text('[server]\ndomain = 5\n[c2s]\nport = -1\n[storage]\nbackend = "oracle"\n')
    code, text = check(str(path))
    assert code == 1
    assert "server.domain: expected str" in text
    assert "c2s.port: port out of range: -1" in text
    assert "storage.backend: must be 'sqlite' or 'mongodb'" in text
    assert "3 problem(s) found" in text


def test_goodDeploymentPasses(tmp_path):
    """A fitting, valid certificate for the domains and a creatable data dir: OK, no warning."""
    code, text = check(writeConfig(tmp_path))
    assert code == 0, text
    assert "OK" in text and "warning" not in text


def test_keyMustFitCertificate(tmp_path):
    """A key of another certificate is an error naming both files."""
    path = writeConfig(tmp_path)
    (tmp_path / "server.key").write_bytes(makeCertificate(["chat.example.org"])[0])
    code, text = check(path)
    assert code == 1
    assert "tls.private_key:" in text and "does not fit the certificate" in text


def test_expiredCertificate(tmp_path):
    """An expired certificate is an error with its date."""
    code, text = check(writeConfig(tmp_path, validFrom=NOW - datetime.timedelta(days=40), days=30))
    assert code == 1
    assert "tls.certificate: expired on" in text


def test_certificateExpiringSoonWarns(tmp_path):
    """A certificate expiring within 14 days is a warning; the exit code stays 0."""
    code, text = check(writeConfig(tmp_path, days=5))
    assert code == 0, text
    assert "tls.certificate: warning: expires on" in text and "1 warning(s)" in text


def test_certificateMustNameDomains(tmp_path):
    """A certificate naming neither the domain nor the MUC domain: one error for each."""
    code, text = check(writeConfig(tmp_path, names=("other.example.org",)))
    assert code == 1
    assert "does not cover 'chat.example.org'" in text
    assert "does not cover 'muc.chat.example.org'" in text


def test_wildcardCoversOneLabel(tmp_path):
    """*.chat.example.org covers the MUC and upload domains; the upload domain is checked when served."""
    from xmppchat.configcheck import nameMatches

    names = ("chat.example.org", "*.chat.example.org")
    assert check(writeConfig(tmp_path, "[rest]\nenabled = true\n", names=names))[0] == 0
    code, text = check(writeConfig(tmp_path, "[rest]\nenabled = true\n",
                                   names=("chat.example.org", "muc.chat.example.org")))
    assert code == 1 and "does not cover 'upload.chat.example.org'" in text
    assert not nameMatches("*.example.org", "a.chat.example.org")
    assert not nameMatches("*.example.org", "example.org")
    assert nameMatches("CHAT.example.org.", "chat.example.org")


def test_dataDirMustBeWritable(tmp_path):
    """A data directory nothing can be written in is an error; one that does not exist yet is fine."""
    path = writeConfig(tmp_path)
    with readOnlyDirectory(tmp_path / "data"):
        code, text = check(path)
    assert code == 1 and "server.data_dir: cannot write in" in text
    (tmp_path / "data").rmdir()
    assert check(path)[0] == 0
    (tmp_path / "data").write_text("a file")
    code, text = check(path)
    assert code == 1 and "is not a directory" in text


def test_devSettingsWarnOutsideDev(tmp_path):
    """exempt_loopback, benchmark rates and CORS * are warnings in a real domain's config, exit 0."""
    body = """
[limits]
exempt_loopback = true
message_rate = 100000

[rest]
enabled = true
cors_origins = ["*"]
token_rate_per_minute = 0
"""
    code, text = check(writeConfig(tmp_path, body, names=("chat.example.org", "*.chat.example.org")))
    assert code == 0, text
    for key in ("limits.exempt_loopback", "limits.message_rate", "rest.cors_origins",
                "rest.token_rate_per_minute"):
        assert f"{key}: warning:" in text
    assert "4 warning(s)" in text


def test_devConfigHasNoWarnings():
    """The dev config (domain localhost) is meant to have them: no warnings."""
    from xmppchat.configcheck import checkDeployment

    code, text = check("conf/xmppchat.dev.toml")
    assert code == 0 and "warning" not in text
    errors, warnings = checkDeployment(buildConfig({"limits": {"exempt_loopback": True}}))
    assert warnings == []


def test_version(capsys):
    """twistd xmppchat --version prints xmppchat's version, not Twisted's alone."""
    from xmppchat import __version__

    with pytest.raises(SystemExit) as e:
        Options().parseOptions(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith(f"xmppchat {__version__}")


def test_adminVersion(capsys):
    """python -m xmppchat.admin --version prints xmppchat's version."""
    from xmppchat import __version__
    from xmppchat.admin import makeParser

    with pytest.raises(SystemExit) as e:
        makeParser().parse_args(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"xmppchat {__version__}"
