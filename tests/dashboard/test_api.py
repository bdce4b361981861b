"""The dashboard's JSON API over HTTP, and `sweepd pareto` agreeing with it."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
from sqlalchemy.orm import Session

from sweepd.dashboard.server import is_loopback
from sweepd.store import db, review
from sweepd.store.enqueue import enqueue_trial
from sweepd.store.leasing import Holder, lease_trial
from sweepd.store.models import Reservation
from sweepd.store.sweeps import SweepInfo, create_sweep
from sweepd.store.transitions import finish_trial, start_trial


def get(url: str) -> Any:
    with urllib.request.urlopen(url) as response:
        return json.load(response)


def sweepd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweepd.cli", *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, COLUMNS="200"))


def test_sweeps_lists_counts_best_score_and_cost_spent(served):
    (row,) = get(served.url + "api/sweeps")
    assert (row["name"], row["owner"], row["env"], row["status"]) == (served.sweep.name, "alice", "snake", "finished")
    assert (row["trials"], row["succeeded"], row["failed"], row["running"]) == (12, 10, 2, 0)
    assert row["best_score"] == 9.0
    assert row["cost_spent"] == pytest.approx(10 + 3 + 30 + 95 + 11 + 20 + 40 + 8 + 12 + 4 + 70 + 1)


def test_sweep_by_name_or_id_has_settings_params_and_a_version(served):
    by_id = get(f"{served.url}api/sweeps/{served.sweep.id}")
    by_name = get(f"{served.url}api/sweeps/{served.sweep.name}")
    assert by_id["id"] == by_name["id"] == served.sweep.id
    assert by_id["direction"] == "maximize"
    assert [p["name"] for p in by_id["params"]] == ["train.learning_rate", "train.total_timesteps"]
    assert by_id["version"] == by_name["version"]


def test_trial_list_leaves_curves_out_and_one_trial_has_its_curve(served):
    trials = get(f"{served.url}api/sweeps/{served.sweep.id}/trials")
    assert [t["number"] for t in trials] == list(range(1, 13))
    assert all("curve" not in t and "metrics" not in t for t in trials)
    assert trials[5]["failure_reason"] == "loss became NaN"  # first line only in the list
    one = get(f"{served.url}api/sweeps/{served.sweep.id}/trials/4")
    assert one["score"] == 9.0 and len(one["curve"]) == 20
    assert one["curve"][-1] == [100_000.0, 9.0, 95.0]
    failed = get(f"{served.url}api/sweeps/{served.sweep.id}/trials/6")
    assert failed["failure_reason"].startswith("loss became NaN\n")


def test_front_averages_seeds_and_is_sorted_by_cost(served):
    front = get(f"{served.url}api/sweeps/{served.sweep.id}/front")["front"]
    assert [p["trials"] for p in front] == [[12], [2], [1, 5, 9], [7], [4]]
    centre = front[2]
    assert centre["seeds"] == 3 and centre["score"] == pytest.approx(5.5)
    assert centre["score_stderr"] == pytest.approx(0.5 / 3**0.5)  # sd 0.5 over 3 seeds
    assert centre["changed"] == {}
    assert [p["cost"] for p in front] == sorted(p["cost"] for p in front)


def test_sweepd_pareto_matches_the_dashboard_front(served, tmp_path):
    api_front = get(f"{served.url}api/sweeps/{served.sweep.id}/front")["front"]

    as_json = sweepd("pareto", served.sweep.name, "--json", "--db", served.db_url)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["front"] == api_front

    table = sweepd("pareto", served.sweep.name, "--db", served.db_url, "--csv", str(tmp_path / "front.csv"),
                   "--png", str(tmp_path / "front.png"))
    assert table.returncode == 0, table.stderr
    with open(tmp_path / "front.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(float(r["cost"]), float(r["score"]), int(r["seeds"]), r["trials"]) for r in rows] == [
        (p["cost"], p["score"], p["seeds"], ";".join(map(str, p["trials"]))) for p in api_front]
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The terminal table: one line per front point, the seed-averaged one with its stderr.
    assert "5.5 ± 0.29" in table.stdout
    assert re.search(r"1,5,9\s+│\s+\(centre\)", table.stdout)
    assert "total_timesteps=100000" in table.stdout


def test_trials_and_front_carry_steps_and_how_each_run_ended(served, marked_sweep):
    sweep = marked_sweep

    trials = get(f"{served.url}api/sweeps/{sweep.id}/trials")
    assert [(t["steps"], t["truncated"], t["stopped"]) for t in trials] == [
        (10_240, False, False), (4_000, True, False), (2_000, True, True), (2_000, True, True)]
    assert get(f"{served.url}api/sweeps/{sweep.id}/trials/3")["stopped"] is True
    front = get(f"{served.url}api/sweeps/{sweep.id}/front")["front"]
    assert [(p["trials"], p["steps"], p["truncated"], p["stopped"]) for p in front] == [
        ([3, 4], 2_000, True, True), ([2], 4_000, True, False), ([1], 10_240, False, False)]
    summary = get(f"{served.url}api/sweeps/{sweep.id}")
    assert (summary["stopped"], summary["cut"]) == (2, 1)
    listed = {s["id"]: s for s in get(f"{served.url}api/sweeps")}
    assert (listed[sweep.id]["stopped"], listed[served.sweep.id]["stopped"]) == (2, 0)


def test_unknown_sweep_and_route_are_json_404s(served):
    for path in ("api/sweeps/nope", "api/sweeps/nope/front", "api/nothing", "static/../server.py"):
        with pytest.raises(urllib.error.HTTPError) as info:
            get(served.url + path)
        assert info.value.code == 404
        assert "error" in json.load(info.value)


def test_every_asset_the_page_names_is_served(served):
    with urllib.request.urlopen(served.url) as response:
        html = response.read().decode()
    assets = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert {"app.js", "style.css"} <= set(assets)
    for name in assets:
        with urllib.request.urlopen(f"{served.url}static/{name}") as response:
            assert response.status == 200 and response.read()
    assert "http" not in re.sub(r'href="#[^"]*"', "", html).replace("http-equiv", "")  # nothing from a CDN


def running_copy(engine, sweep: SweepInfo) -> SweepInfo:
    """A second sweep like `sweep` without a trial budget: it takes work (the fixture's is finished)."""
    spec = {**sweep.spec, "settings": {**sweep.spec["settings"], "max_trials": 0}}
    return create_sweep(engine, spec, owner="alice", name=f"{sweep.name}-more")


def test_boxes_show_slot_holders_and_reservations(served):
    engine = db.open_store(served.db_url)
    sweep = running_copy(engine, served.sweep)
    holder = Holder(agent="gpu-box-1:1:abc", box="gpu-box-1", slot=1, user="alice")
    enqueue_trial(engine, sweep.id, {"train.learning_rate": 0.01, "train.total_timesteps": 10_000})
    lease = lease_trial(engine, holder, lambda sweep, history: None)
    assert lease is not None
    with Session(engine) as session, session.begin():
        session.add(Reservation(box="gpu-box-1", user="bob", slots=None, starts_at=0.0, until=4e9,
                                note="paper deadline"))
    (box,) = get(served.url + "api/boxes")
    assert (box["name"], box["slots"], box["device"]) == ("gpu-box-1", 2, "cuda")
    held = [v for v in box["slot_views"] if v["trial"] is not None]
    assert [(v["slot"], v["sweep"], v["sweep_id"], v["trial"], v["status"]) for v in held] == [
        (1, sweep.name, sweep.id, 1, "leased")]
    assert held[0]["heartbeat_age"] >= 0
    assert [(r["user"], r["note"]) for r in box["reservations"]] == [("bob", "paper deadline")]


def test_version_changes_when_a_trial_starts_or_finishes(review_sweep):
    url, finished = review_sweep
    engine = db.open_store(url)
    sweep = running_copy(engine, finished)
    before = review.sweep_version(engine, sweep.id)
    enqueue_trial(engine, sweep.id, {"train.learning_rate": 0.02, "train.total_timesteps": 1_000})
    queued = review.sweep_version(engine, sweep.id)
    holder = Holder(agent="a", box="b", slot=0, user="alice")
    lease = lease_trial(engine, holder, lambda sweep, history: None)
    start_trial(engine, lease)
    started = review.sweep_version(engine, sweep.id)
    finish_trial(engine, lease, 3.0, 2.0)
    finished = review.sweep_version(engine, sweep.id)
    assert len({json.dumps(v) for v in (before, queued, started, finished)}) == 4


def test_only_loopback_hosts_count_as_private():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("myhost")


def refused(url: str) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of a request the API refuses."""
    with pytest.raises(urllib.error.HTTPError) as info:
        get(url)
    assert info.value.headers["Content-Type"] == "application/json"
    return info.value.code, json.load(info.value)


# What a URL can name that no row can have: past the 32-bit id column (PostgreSQL: integer out of
# range), past SQLite's 64 bits (OverflowError), a NUL byte (PostgreSQL refuses it in text), digits
# that str.isdigit accepts and int() refuses ("²") or reads as another id ("١" is 1).
IMPOSSIBLE_REFS = ["2147483648", "9223372036854775808", "99999999999999999999", "9" * 5000,
                   "%00", "a%00b", "1%00", "%C2%B2", "%D9%A1"]


@pytest.mark.parametrize("ref", IMPOSSIBLE_REFS)
def test_a_sweep_ref_no_row_can_have_is_a_json_404_without_traceback(served_on_each_db, ref, capsys):
    """Each answered an empty reply and printed an 80-line traceback."""
    for route in ("", "/trials", "/front", "/trials/1"):
        code, body = refused(f"{served_on_each_db.url}api/sweeps/{ref}{route}")
        assert code == 404 and body["error"].startswith("no sweep "), (route, body)
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("number", ["0", "2147483648", "9223372036854775808", "99999999999999999999", "9" * 5000,
                                    "%D9%A1", "1%00"])
def test_a_trial_number_no_row_can_have_is_a_json_404_without_traceback(served_on_each_db, number, capsys):
    sweep = served_on_each_db.sweep
    code, body = refused(f"{served_on_each_db.url}api/sweeps/{sweep.id}/trials/{number}")
    assert code == 404 and "error" in body, body
    assert "Traceback" not in capsys.readouterr().err


def test_a_sweep_named_with_digits_past_the_id_column_is_found_by_name(served_on_each_db):
    engine = db.open_store(served_on_each_db.db_url)
    named = create_sweep(engine, served_on_each_db.sweep.spec, owner="alice", name="3000000000")
    assert get(f"{served_on_each_db.url}api/sweeps/3000000000")["id"] == named.id
    assert get(f"{served_on_each_db.url}api/sweeps/3000000000/trials") == []
    assert get(f"{served_on_each_db.url}api/sweeps/{served_on_each_db.sweep.id}")["id"] == served_on_each_db.sweep.id


def test_an_internal_error_is_a_json_500_and_its_traceback_goes_to_the_log(served, monkeypatch, capsys):
    from sweepd.dashboard.api import Api

    def broken(self: Api) -> list[dict[str, Any]]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Api, "boxes", broken)
    code, body = refused(served.url + "api/boxes")
    assert code == 500 and body["error"].startswith("internal error: RuntimeError"), body
    assert "RuntimeError: a bug" in capsys.readouterr().err
