"""What the command line says when something is wrong: bad arguments are a usage message and exit
2, runtime trouble is one line and exit 1, never a traceback; text with brackets prints as it is."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from toy import write_toy_sweep

from sweepd import cli
from sweepd.store.db import open_store
from sweepd.store.review import list_trials
from sweepd.store.sweeps import find_sweep


def run_main(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """`sweepd ARGS` through the console entry point, in this process (argument errors need no
    subprocess); exit code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["sweepd", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out, err = capsys.readouterr()
    return exited.value.code or 0, out, err


def sweepd(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweepd.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


@pytest.mark.parametrize("args", [
    ["reserve"],                                       # missing argument
    ["launch", "snake", "--max-trials", "abc"],        # not a number
    ["nosuchcmd"],
    ["status", "--bogus"],
    ["events", "--limit", "-1"],
    ["events", "--limit", "0"],
    ["agent", "--lease-seconds", "0"],
    ["launch", "snake", "--lease-seconds", "-5"],
    ["agent", "--lease-seconds", "nan"],
    ["agent", "--slots", "0"],
    ["dashboard", "--port", "99999"],
    ["dashboard", "--port", "-1"],
])
def test_bad_arguments_are_a_usage_error_with_exit_2(args, capsys, monkeypatch):
    code, _, err = run_main(args, capsys, monkeypatch)
    assert code == 2, err
    assert err.startswith("Usage: sweepd") and "\nError: " in err and "Traceback" not in err


def test_entry_point_reports_a_usage_error_without_traceback():
    result = sweepd("status", "--bogus")
    assert result.returncode == 2
    assert "Error: No such option: --bogus" in result.stderr and "Traceback" not in result.stderr


def test_help_prints_brackets_and_says_slots_means_cpu(capsys, monkeypatch):
    code, out, _ = run_main(["launch", "--help"], capsys, monkeypatch)
    assert code == 0
    flat = " ".join(out.split())
    assert "Override [sweep] max_trials." in flat
    assert "Giving --slots runs trials on CPU, even on a GPU box." in flat


@pytest.mark.parametrize("args", [["status"], ["status", "s"], ["pareto", "s"], ["boxes"], ["events"],
                                  ["export", "s", "--trial", "1"], ["baselines"], ["prune", "s"], ["dashboard"]])
def test_reading_commands_refuse_a_sqlite_file_that_is_not_there(args, tmp_path, capsys, monkeypatch):
    typo = tmp_path / "typo.db"
    code, _, err = run_main([*args, "--db", f"sqlite:///{typo}"], capsys, monkeypatch)
    assert code == 1
    assert err.strip() == f"error: no database at {typo}; launch a sweep first or pass --db"
    assert not typo.exists()


def test_a_database_error_is_one_line(sqlite_url, capsys, monkeypatch):
    engine = open_store(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE events"))
    code, _, err = run_main(["events", "--db", sqlite_url], capsys, monkeypatch)
    assert code == 1
    assert err.strip() == "error: database: no such table: events"


def test_dashboard_on_a_port_in_use_says_so(sqlite_url, capsys, monkeypatch):
    open_store(sqlite_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_main(["dashboard", "--port", str(port), "--db", sqlite_url], capsys, monkeypatch)
    assert code == 1
    assert err.strip() == f"error: port {port} is in use; try --port 0 (any free port)"


CRASH = """\
env_name = "toy"
trainer = "command"
command = ["/nonexistent/[rank0]/arr[i]/[/tmp/x]/train", "{{train.lr}}"]

[sweep]
searcher = "random"
max_suggestion_cost = 60.0
max_trials = 2
eval_episodes = 1
eval_seeds = 1

[search.train.lr]
space = "log"
min = 0.001
max = 0.1
center = 0.01
"""


def test_launch_live_prints_bracketed_reasons_and_exits_1_when_paused(tmp_path: Path):
    sweep_file = tmp_path / "crash.toml"
    sweep_file.write_text(CRASH.format())
    result = sweepd("launch", str(sweep_file), "--live", "--no-wandb", "--name", "crash", COLUMNS="300")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "[rank0]/arr[i]/[/tmp/x]/train" in result.stdout  # the agent's log line in the live view
    assert result.stderr.startswith("sweep crash paused: trial 1: cannot start command "
                                    "'/nonexistent/[rank0]/arr[i]/[/tmp/x]/train'")


def test_launch_runs_only_its_own_sweep(tmp_path: Path):
    engine = open_store()
    other = write_toy_sweep(tmp_path, trials=2, steps=2, name="other")
    queued = sweepd("launch", str(other), "--detach", "--name", "other")
    assert queued.returncode == 0, queued.stderr
    mine = write_toy_sweep(tmp_path, trials=1, steps=2, name="mine")

    result = sweepd("launch", str(mine), "--no-live", "--no-wandb", "--name", "mine")

    assert result.returncode == 0, result.stderr
    assert [t.status for t in list_trials(engine, find_sweep(engine, "mine").id)] == ["succeeded"]
    assert list_trials(engine, find_sweep(engine, "other").id) == []  # left for `sweepd agent`
