"""
Smoke tests of bench/soak.py (XEP-0198 resumption, clean re-logins, loss
and RSS checks) and of bench/run.py's fan-out and history stages, each
against a fresh xmppchat with a few users for a few seconds.
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys

from tests.e2e.conftest import ROOT


def _run(args, tmp_path, timeout=120):
    done = subprocess.run([sys.executable, *args, "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    files = glob.glob(str(tmp_path / "*.json"))
    assert files, done.stdout[-2000:] + done.stderr[-2000:]
    with open(files[0]) as f:
        return done, json.load(f)


def test_soakResumesWithoutLoss(tmp_path):
    """A few users disconnect and resume or re-log in; every message arrives exactly once."""
    done, data = _run(["bench/soak.py", "--users", "6", "--seconds", "6", "--rate", "20",
                       "--online-mean", "1", "--clean-share", "0.3", "--drain", "5"], tmp_path)
    result = data["result"]
    assert done.returncode == 0, done.stdout[-2000:]
    assert result["sent"] > 10  # how many depends on the machine; loss checks are what matter
    assert result["received"] == result["sent"] - result["bounced"]
    assert result["lost"] == 0 and result["duplicates"] == 0
    assert result["resumed"] > 0 and result["clean_relogins"] > 0
    assert result["unexpected_disconnects"] == 0
    assert data["rss_check"]["bound"] == 0.10 and len(result["samples"]) >= 4


def test_fanoutAndHistoryStages(tmp_path):
    """The smoke profile's group fan-out and REST history stages measure something."""
    done, data = _run(["bench/run.py", "--profile", "smoke", "--only", "xmppchat", "--runs", "1",
                       "--stages", "fanout,history"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    group = data["raw"]["group_10"]["xmppchat"][0]
    assert group["delivered"] == group["sent"] * 10 and group["lost"] == 0
    assert group["delivered_per_s"] > 0 and group["latency_p99_ms"] > 0
    for label in ("first", "deep"):
        history = data["raw"][f"history_{label}"]["xmppchat"][0]
        assert history["items"] == 100 and history["latency_ms"] > 0
    assert data["raw"]["history_deep"]["xmppchat"][0]["skip"] == 1800
