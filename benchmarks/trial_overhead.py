"""The agent's overhead per trial: from lease to the first training step, and from the last
training step to the result recorded in the database.

Runs a real sweep through `sweepd launch` in a scratch SWEEPD_HOME and reads each trial's
timeline (epoch seconds the agent stamps as worker events arrive) against the trial's lease
and finish times in the database.

    python benchmarks/trial_overhead.py                 # a trivial command trainer, 8 trials
    python benchmarks/trial_overhead.py --sweep snake --trials 2

Columns (medians over trials):
  lease->start      lease taken -> the first training step starts (spawn, imports, env build)
  start->report1    first training step -> first progress report (bounded below by the worker's
                    progress cadence, cost_cap / 20 for PufferLib trials: not overhead)
  last->result      last progress report -> result event (training tail, evaluation, checkpoint)
  result->recorded  result event -> result committed to the database (the agent's own share)
The agent's overhead per trial is lease->start plus result->recorded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TOY = """\
import json, sys
for step in range(1, 4):
    print(json.dumps({"step": step, "score": step * float(sys.argv[1])}), flush=True)
"""

TOY_SWEEP = """\
env_name = "toy"
trainer = "command"
command = ["{python}", "{script}", "{{train.x}}"]
[sweep]
searcher = "random"
max_suggestion_cost = 30.0
max_trials = {trials}
[search.train.x]
space = "linear"
min = 0.0
max = 1.0
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", default="toy", help="'toy' (trivial command trainer) or a sweep name, e.g. snake")
    ap.add_argument("--trials", type=int, default=8)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="sweepd-overhead-") as tmp:
        home = Path(tmp)
        env = dict(os.environ, SWEEPD_HOME=str(home), SWEEPD_DB=f"sqlite:///{home / 'sweepd.db'}",
                   WANDB_MODE="disabled")
        target = args.sweep
        if target == "toy":
            script = home / "toy.py"
            script.write_text(TOY)
            target = str(home / "toy.toml")
            Path(target).write_text(TOY_SWEEP.format(python=sys.executable, script=script, trials=args.trials))
        print(f"running {args.trials} trials of {args.sweep} ...", flush=True)
        subprocess.run([sys.executable, "-m", "sweepd.cli", "launch", target, "--max-trials", str(args.trials),
                        "--no-live", "--no-wandb", "--name", "overhead"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        os.environ.update(SWEEPD_DB=env["SWEEPD_DB"])
        from sweepd.store import db
        from sweepd.store.review import list_trials
        from sweepd.store.sweeps import find_sweep

        engine = db.make_engine(env["SWEEPD_DB"], read_only=True)
        trials = list_trials(engine, find_sweep(engine, "overhead").id)

    rows = {"lease->start": [], "start->report1": [], "last->result": [], "result->recorded": []}
    for t in trials:
        line = t.metrics.get("timeline", {})
        if t.status != "succeeded" or not {"started", "first_progress", "last_progress", "result"} <= line.keys():
            print(f"trial {t.number}: {t.status}, no full timeline", file=sys.stderr)
            continue
        rows["lease->start"].append(line["started"] - t.created_at)
        rows["start->report1"].append(line["first_progress"] - line["started"])
        rows["last->result"].append(line["result"] - line["last_progress"])
        rows["result->recorded"].append(t.finished_at - line["result"])
    print(f"{'phase':18s} {'median_s':>9s} {'min_s':>7s} {'max_s':>7s}   ({len(rows['lease->start'])} trials)")
    for name, values in rows.items():
        if values:
            print(f"{name:18s} {statistics.median(values):9.3f} {min(values):7.3f} {max(values):7.3f}")


if __name__ == "__main__":
    main()
