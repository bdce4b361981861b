"""Checkpoints through the real CLI: export a trial's policy, prune off-front ones (never the
front), and the Atari baselines table built from finished sweeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TRAINER = """\
import json, os, sys
x, art = float(sys.argv[1]), sys.argv[2]
path = os.path.join(art, "policy.pt")
with open(path, "wb") as f:
    f.write(b"w" * 1000)
# cost grows with x and so does the score: every config lands on the front unless resampled
step = int(1000 * x)
print(json.dumps({"step": step, "score": step / 1000, "final": True, "checkpoint": path}), flush=True)
"""

SWEEP = """\
env_name = "{env}"
trainer = "command"
command = ["{python}", "{script}", "{{train.x}}", "{{artifact_dir}}"]
[sweep]
searcher = "random"
max_suggestion_cost = 30.0
max_trials = 4
[search.train.x]
space = "linear"
min = 0.0
max = 1.0
"""


def sweepd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweepd.cli", *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))


def launch(tmp_path: Path, env: str, name: str) -> list[dict]:
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    sweep_file = tmp_path / f"{name}.toml"
    sweep_file.write_text(SWEEP.format(env=env, python=sys.executable, script=script))
    result = sweepd("launch", str(sweep_file), "--no-live", "--no-wandb", "--name", name)
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(sweepd("status", name, "--json").stdout)
    assert [t["status"] for t in status["trials"]] == ["succeeded"] * 4
    return status


def test_export_copies_the_trials_policy(tmp_path):
    launch(tmp_path, "toy", "arts")
    out = tmp_path / "exported.pt"
    result = sweepd("export", "arts", "--trial", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == b"w" * 1000
    missing = sweepd("export", "arts", "--trial", "9")
    assert missing.returncode == 2 and "has no trial 9" in missing.stderr


def test_prune_never_deletes_front_checkpoints(tmp_path):
    status = launch(tmp_path, "toy", "prunes")
    on_front = {n for point in status["front"] for n in point["trials"]}
    result = sweepd("prune", "prunes")
    assert result.returncode == 0, result.stderr
    for trial in status["trials"]:
        exists = Path(trial["metrics"]["checkpoint"]).exists()
        assert exists == (trial["number"] in on_front), trial["number"]
    gone = next(t["number"] for t in status["trials"] if t["number"] not in on_front) if len(on_front) < 4 else None
    if gone is not None:
        again = sweepd("export", "prunes", "--trial", str(gone))
        assert again.returncode == 1 and "is gone" in again.stderr


def test_baselines_show_the_best_seed_averaged_score_next_to_ppo(tmp_path):
    status = launch(tmp_path, "pong", "pong-toy")
    best = max(t["score"] for t in status["trials"])
    rows = {r["game"]: r for r in json.loads(sweepd("baselines", "--json").stdout)}
    assert set(rows) == {"beam_rider", "breakout", "enduro", "pong", "qbert", "seaquest", "space_invaders"}
    assert (rows["pong"]["best"], rows["pong"]["ppo_paper"], rows["pong"]["sweep"]) == (best, 20.7, "pong-toy")
    assert rows["pong"]["steps"] == round(1000 * best)
    assert rows["breakout"]["best"] is None and rows["breakout"]["ppo_paper"] == 274.8
    table = sweepd("baselines")
    assert table.returncode == 0 and "274.8" in table.stdout


def test_prune_leaves_files_outside_the_trials_folder(tmp_path):
    from sweepd.artifacts import prune_checkpoints
    from sweepd.store.review import TrialInfo

    shared = tmp_path / "shared.pt"
    shared.write_bytes(b"x")

    def trial(number: int, score: float, cost: float, checkpoint: Path) -> TrialInfo:
        folder = tmp_path / f"trial-{number}"
        folder.mkdir(exist_ok=True)
        return TrialInfo(id=number, sweep_id=1, number=number, kind="search", params={"x": number}, seed=0,
                         status="succeeded", box=None, slot=None, lock_owner=None, lock_token=None,
                         lock_expires_at=None, heartbeat_at=None, attempts=1, predicted_score=None,
                         predicted_cost=None, score=score, score_stderr=None, cost=cost, truncated=False,
                         metrics={"checkpoint": str(checkpoint), "log": str(folder / "worker.log")},
                         failure_reason=None, failure_category=None, created_at=0.0, started_at=None,
                         finished_at=None)

    own = tmp_path / "trial-2" / "policy.pt"
    (tmp_path / "trial-2").mkdir()
    own.write_bytes(b"yy")
    trials = [trial(1, 1.0, 1.0, shared), trial(2, 0.5, 2.0, own), trial(3, 0.1, 3.0, shared)]
    result = prune_checkpoints(trials, "maximize")
    assert result.removed == (own.resolve(),) and not own.exists()
    assert shared.exists()  # named by front trial 1 (and by trial 3, outside trial 3's folder)
