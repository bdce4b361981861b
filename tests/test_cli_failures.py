"""How the real `sweepd` command line fails: an expected error is one line; an internal bug is one
line naming its type and how to see its traceback (--debug, SWEEPD_DEBUG=1), which those print."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sweepd.store import db
from sweepd.store.sweeps import create_sweep

SETTINGS = {"searcher": "random", "seed": 3, "max_suggestion_cost": 10.0, "max_trials": 3, "max_total_cost": 0.0,
            "priority": 0, "max_slots": 0, "direction": "maximize"}
# A stored spec no sweep file can produce (min above max): reading it is sweepd's bug to report, not the user's.
BROKEN = {"name": "broken", "env": "snake", "trainer": "command", "source": "test", "defaults": {}, "command": [],
          "settings": SETTINGS, "params": [{"name": "train.x", "space": "linear", "min": 2.0, "max": 1.0,
                                            "center": 1.5, "integer": False, "scale": None}]}


def sweepd(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweepd.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", **env})


@pytest.fixture
def url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    engine = db.open_store(url)
    create_sweep(engine, BROKEN, owner="tester", name="broken")
    engine.dispose()
    return url


def test_an_internal_error_is_one_line_naming_its_type_and_the_debug_switch(url):
    done = sweepd("enqueue", "broken", "train.x=1.5", "--db", url)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: internal error (a bug in sweepd): ValueError: train.x: min (2.0) must be "
                                   "below max (1.0) (run with --debug or SWEEPD_DEBUG=1 for the traceback)")


@pytest.mark.parametrize(("args", "env"), [(["--debug"], {}), ([], {"SWEEPD_DEBUG": "1"})])
def test_debug_prints_an_internal_errors_traceback(url, args, env):
    done = sweepd("enqueue", "broken", "train.x=1.5", "--db", url, *args, **env)
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback (most recent call last):")
    assert done.stderr.strip().endswith("ValueError: train.x: min (2.0) must be below max (1.0)")


def test_an_expected_error_stays_one_line_even_with_debug(url):
    done = sweepd("--debug", "status", "nope", "--db", url)
    assert (done.returncode, done.stderr.strip()) == (1, "error: no sweep 'nope'; recent: broken")


@pytest.mark.parametrize("args", [["stop", "s"], ["retry", "s"], ["pause", "s"], ["resume", "s"],
                                  ["extend", "s", "--trials", "1"], ["enqueue", "s", "train.x=1"],
                                  ["best", "s"], ["reserve", "box-1", "--for", "1h"], ["release", "box-1"]])
def test_commands_that_change_a_sweep_or_box_refuse_a_sqlite_file_that_is_not_there(args, tmp_path):
    typo = tmp_path / "typo.db"
    done = sweepd(*args, "--db", f"sqlite:///{typo}")
    assert (done.returncode, done.stderr.strip()) == (1, f"error: no database at {typo}; launch a sweep first or "
                                                         f"pass --db")
    assert not typo.exists()


@pytest.mark.parametrize("ref", ["99999999999999999999", "2147483648", "²"])
def test_a_ref_that_cannot_be_an_id_is_looked_up_as_a_name_and_missing_is_one_line(db_url, ref):
    engine = db.open_store(db_url)
    create_sweep(engine, {**BROKEN, "params": []}, owner="tester", name="real")
    engine.dispose()
    done = sweepd("status", ref, "--db", db_url)
    assert (done.returncode, done.stderr.strip()) == (1, f"error: no sweep '{ref}'; recent: real")


def test_a_sweep_named_like_a_huge_number_is_found_by_its_name(tmp_path):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    engine = db.open_store(url)
    create_sweep(engine, {**BROKEN, "params": []}, owner="tester", name="99999999999999999999")
    engine.dispose()
    done = sweepd("status", "99999999999999999999", "--db", url)
    assert done.returncode == 0 and done.stdout.startswith("99999999999999999999"), done.stderr
