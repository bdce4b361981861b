#!/usr/bin/env bash
# The GPU check of issue 15, one command on a GPU machine with no network (docs/gpu.md: how to run
# it with the device tool). Under 8 minutes on one GPU:
#   1. install: a venv over the image's Python (--system-site-packages: its CUDA torch, Cython,
#      nvcc), sweepd's and PufferLib's requirements from the carried gpu_wheels/ (numpy<2 shadows
#      the image's 2.x), PufferLib 3 built from the carried patched sdist (scripts/install_pufferlib.sh's
#      build_wheel, with its CUDA advantage kernel), sweepd itself (editable, --no-deps: its
#      torch==2.13.0 pin is for CPU boxes);
#   2. GPU facts: nvidia-smi, torch.cuda;
#   3. for snake and puffer_breakout: a real `sweepd launch` on CUDA through the agent with 2 trials
#      per GPU (--trials-per-gpu 2) at a short cap, then from `sweepd status --json` each trial's
#      steps/s (steps / train_seconds), its device and whether the two trials ran at once;
#   4. PufferLib's own trainer (benchmarks/train_throughput.py --direct) on the same GPU with each
#      trial's config for the trial's number of steps, two at once as the trials ran, and the ratio.
# Exits non-zero when a check fails: an install step, a trial that did not succeed, a trial not on
# cuda, trials that never overlapped, or steps/s more than 10% under PufferLib's own.
#
# Usage: benchmarks/gpu_check.sh [--install-only]
#   --install-only  step 1 only (no GPU needed): proves the offline install on any box
# Environment:
#   OUT                where the log and reports go (the device tool fetches it; default $WORK/out)
#   GPU_CHECK_PYTHON   the interpreter the venv is made from (default python3, the image's)
#   GPU_CHECK_WHEELS   the prepared folder (default gpu_wheels; scripts/prepare_gpu_wheels.sh)
#   GPU_CHECK_WORK     scratch: venv, build, sweepd's data (default /tmp/sweepd-gpu-check; emptied)
#   GPU_CHECK_CAP      per-trial cost cap in seconds (default 45)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

MODE=full
case "${1:-}" in
    "") ;;
    --install-only) MODE=install ;;
    *) echo "usage: $0 [--install-only]" >&2; exit 2 ;;
esac
BASE_PYTHON="${GPU_CHECK_PYTHON:-python3}"
WHEELS="${GPU_CHECK_WHEELS:-gpu_wheels}"
WORK="${GPU_CHECK_WORK:-/tmp/sweepd-gpu-check}"
RESULTS="${OUT:-$WORK/out}"
CAP="${GPU_CHECK_CAP:-45}"
TRIALS=2            # one round of 2 trials on the one GPU
PER_GPU=2
ENVS=(snake puffer_breakout)
MIN_RATIO=0.90      # the issue's target: within 10% of PufferLib's own trainer

# Emptied first, but only a folder this script made (it leaves a marker), or an empty one.
if [[ -d "$WORK" && -n "$(ls -A "$WORK")" && ! -f "$WORK/.sweepd-gpu-check" ]]; then
    echo "$WORK is not empty and was not made by this script: set GPU_CHECK_WORK to another folder" >&2
    exit 2
fi
rm -rf "$WORK"
mkdir -p "$WORK" "$RESULTS"
touch "$WORK/.sweepd-gpu-check"
WHEELS="$(cd "$WHEELS" 2>/dev/null && pwd)" || { echo "no folder ${GPU_CHECK_WHEELS:-gpu_wheels}: run scripts/prepare_gpu_wheels.sh where PyPI answers, and carry it" >&2; exit 1; }

VENV="$WORK/venv"
VPY="$VENV/bin/python"
PYTHON="$VPY"
# shellcheck source=scripts/install_pufferlib.sh
source scripts/install_pufferlib.sh   # build_wheel, puffer_installed, PUFFER_VERSION (for $PYTHON)
say() { printf '[gpu_check %4ds] %s\n' "$SECONDS" "$*"; }
FAILURES=()
fail() { say "FAIL: $*"; FAILURES+=("$*"); }
die() { say "FAIL: $*"; say "GPU CHECK FAILED"; exit 1; }

# Nothing is fetched: pip sees the carried folder alone, whatever this box's pip config says.
export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELS" PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONUNBUFFERED=1 SWEEPD_HOME="$WORK/home" WANDB_MODE=disabled

install_venv() {
    [[ -f "$WHEELS/requirements.txt" ]] || die "$WHEELS has no requirements.txt: run scripts/prepare_gpu_wheels.sh"
    say "making $VENV over $("$BASE_PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    # --without-pip: the venv's own pip and setuptools (3.11's venv bundles an old setuptools) would
    # shadow the image's, and torch's requirements (setuptools>=77) then fail to resolve offline.
    "$BASE_PYTHON" -m venv --system-site-packages --without-pip "$VENV"
    # The image's python3 may itself be a venv (/opt/torch/.venv holds torch): --system-site-packages
    # reaches only its base interpreter's packages, so its own site-packages (its pip too) come in
    # through a .pth, after the venv's (what is installed here, numpy<2 first of all, wins).
    "$BASE_PYTHON" -c 'import site; print("\n".join(site.getsitepackages()))' \
        >"$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_base_site_packages.pth"

    say "installing the carried requirements with $("$VPY" -m pip --version | cut -d' ' -f1-2) (--no-index --find-links $WHEELS)"
    if ! "$VPY" -m pip install -q --only-binary=:all: -r "$WHEELS/requirements.txt"; then
        # The resolver also walks the image's own packages (torch's pins); where their metadata does
        # not hold together offline, the carried set (resolved together for this Python) goes in
        # as it is, and the import checks below say whether the result works.
        say "pip's resolver failed (above): installing every carried wheel with --no-deps instead"
        "$VPY" -m pip install -q --no-deps "$WHEELS"/*.whl
    fi

    # setup.py compiles PufferLib's CUDA kernel only when nvcc is on PATH.
    if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
        export PATH="$PATH:/usr/local/cuda/bin"
    fi
    say "nvcc: $(command -v nvcc || echo 'not found: PufferLib gets its CPU advantage kernel only')"
    say "building PufferLib $PUFFER_VERSION from the carried patched sdist ($(nproc) jobs)"
    # PIP_VERBOSE: build.log keeps every compiler command (nvcc's among them).
    PIP_VERBOSE=1 SWEEPD_BUILD_JOBS="$(nproc)" build_wheel "$WHEELS/sdist/pufferlib-$PUFFER_VERSION.tar.gz" \
        "$WORK/wheel" >"$RESULTS/build.log" 2>&1 || { tail -n 40 "$RESULTS/build.log"; die "PufferLib did not build (build.log)"; }
    say "$(grep -o "wheel built in .*" "$RESULTS/build.log"); nvcc ran $(grep -c "nvcc.* -c " "$RESULTS/build.log" || true) time(s)"
    "$VPY" -m pip install -q --no-deps "$WORK"/wheel/pufferlib-"$PUFFER_VERSION"-*.whl
    puffer_installed || die "pufferlib $PUFFER_VERSION does not import (pufferlib.pufferl, the snake binding)"

    say "installing sweepd from $REPO (editable, --no-deps)"
    "$VPY" -m pip install -q --no-deps --no-build-isolation -e "$REPO"

    "$VPY" - <<'EOF' || die "the venv does not import what the check needs (above)"
import importlib.metadata as md
import sys

import numpy
import scipy.special
import scipy.stats  # sweepd's searcher; the image's scipy must work with numpy<2
import torch

import pufferlib.pufferl  # noqa: F401
import sweepd.cli  # noqa: F401

print(f"python {sys.version.split()[0]}; numpy {numpy.__version__} ({numpy.__file__}); scipy {scipy.__version__}; "
      f"torch {torch.__version__} (cuda {torch.version.cuda}); pufferlib {md.version('pufferlib')}; "
      f"sweepd {md.version('sweepd')}")
kernel = torch._C._dispatch_has_kernel_for_dispatch_key("pufferlib::compute_puff_advantage", "CUDA")
print(f"PufferLib's advantage kernel has a CUDA implementation: {kernel}")
if not numpy.__version__.startswith("1."):
    sys.exit(f"numpy {numpy.__version__} shadows the carried numpy<2")
if torch.version.cuda and not kernel:
    sys.exit("torch has CUDA but PufferLib was built without its CUDA kernel (was nvcc on PATH?)")
EOF
    "$VENV/bin/sweepd" --help >/dev/null || die "the sweepd command does not start"
    say "install done"
}

gpu_facts() {
    nvidia-smi || die "nvidia-smi failed: no GPU here"
    "$VPY" - <<'EOF' || die "torch sees no CUDA device"
import sys

import torch

if not torch.cuda.is_available():
    sys.exit("torch.cuda.is_available() is False")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}, capability {p.major}.{p.minor}, {p.total_memory / 2**30:.0f} GiB, "
          f"{p.multi_processor_count} SMs; torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"cuDNN {torch.backends.cudnn.version()}")
EOF
}

# Samples the GPU every 2 s (utilization %, memory MiB, compute processes) while the sweeps run.
gpu_monitor() {
    while true; do
        printf '%s, %s, %s\n' "$(date +%s)" \
            "$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits | head -n 1)" \
            "$(nvidia-smi --query-compute-apps=pid --format=csv,noheader 2>/dev/null | grep -c . || true)"
        sleep 2
    done
}

# Runs one sweep through `sweepd launch` and checks its trials. For the direct runs it writes
# $WORK/<env>-runs.json (each succeeded trial's number, steps and steps/s) and <env>-config-<i>.json.
run_sweep() {
    local env="$1" name="gpu-$1" status=0
    say "sweepd launch $env: $TRIALS trials, $PER_GPU per GPU, cap $CAP s"
    timeout $((CAP * 3 + 60)) "$VENV/bin/sweepd" launch "$env" --name "$name" --trials-per-gpu "$PER_GPU" \
        "${DEVICE_OPTION[@]}" --max-trials "$TRIALS" --max-suggestion-cost "$CAP" --no-live --no-wandb \
        || status=$?
    (( status == 0 )) || fail "sweepd launch $env exited $status"
    "$VENV/bin/sweepd" status "$name" --json >"$RESULTS/status-$env.json" || { fail "sweepd status $name"; return; }
    "$VENV/bin/sweepd" boxes --json >"$WORK/boxes.json" || { fail "sweepd boxes"; return; }
    # The sweep file as launch resolved it: its defaults under each trial's params make the trial's config.
    "$VENV/bin/sweepd" show "$env" --json >"$WORK/$env-spec.json" || { fail "sweepd show $env"; return; }
    "$VPY" - "$env" "$TRIALS" "$RESULTS/status-$env.json" "$WORK/boxes.json" "$WORK/$env-spec.json" "$WORK" \
        <<'EOF' || fail "$env: trial checks (above)"
import json
import sys
from pathlib import Path

from sweepd.spec import SweepSpec

env, expected, status_file, boxes_file, spec_file, work = sys.argv[1:]
trials = json.loads(Path(status_file).read_text())["trials"]
boxes = json.loads(Path(boxes_file).read_text())
box_device = {b["name"]: b["device"] for b in boxes}
print("boxes: " + ", ".join(f"{b['name']} ({b['device']}, {b['slots']} slots)" for b in boxes))
spec = SweepSpec.from_json(json.loads(Path(spec_file).read_text())["spec"])
problems, runs = [], []
print(f"{'trial':>5} {'status':<10} {'box:slot':<22} {'device':<7} {'steps':>10} {'train s':>8} {'steps/s':>10}")
for t in trials:
    m = t["metrics"] or {}
    device = m.get("device") or box_device.get(t["box"], "?")
    sps = m["steps"] / m["train_seconds"] if m.get("steps") and m.get("train_seconds") else None
    print(f"{t['number']:>5} {t['status']:<10} {t['box']}:{t['slot']!s:<10} {device:<7} {m.get('steps', '-'):>10} "
          f"{m.get('train_seconds', 0):>8.1f} {sps or 0:>10.0f}")
    if t["status"] != "succeeded":
        problems.append(f"trial {t['number']} {t['status']}: {t['failure_reason']}")
        log = Path(m.get("log") or "")
        if log.is_file():
            print(f"--- tail of {log}\n" + "".join(log.read_text(errors="replace").splitlines(True)[-25:]))
        continue
    if not str(device).startswith("cuda"):
        problems.append(f"trial {t['number']} ran on {device}, not cuda")
    config = Path(work) / f"{env}-config-{len(runs)}.json"
    config.write_text(json.dumps(spec.trial_config(t["params"])))
    runs.append({"number": t["number"], "steps": m["steps"], "sps": sps, "config": str(config)})
if len(trials) != int(expected):
    problems.append(f"{len(trials)} trials, expected {expected}")
spans = sorted((t["started_at"], t["finished_at"]) for t in trials if t["started_at"] and t["finished_at"])
overlap = max((min(a[1], b[1]) - max(a[0], b[0]) for i, a in enumerate(spans) for b in spans[i + 1:]),
              default=0.0)
print(f"{env}: the longest time two trials ran at once: {overlap:.1f} s")
if overlap <= 0:
    problems.append("no two trials ran at once")
Path(work, f"{env}-runs.json").write_text(json.dumps(runs))
for p in problems:
    print(f"{env}: {p}")
sys.exit(1 if problems else 0)
EOF
}

# PufferLib's own trainer on each succeeded trial's config and step count, two at once as the
# trials ran; prints its steps/s beside the trial's and the ratio.
compare_direct() {
    local env="$1" runs="$WORK/$1-runs.json" steps pids=() i
    [[ -s "$runs" ]] || { fail "$env: no succeeded trial to compare"; return; }
    mapfile -t steps < <("$VPY" -c 'import json, sys; print(*(r["steps"] for r in json.load(open(sys.argv[1]))), sep="\n")' "$runs")
    (( ${#steps[@]} > 0 )) || { fail "$env: no succeeded trial to compare"; return; }
    say "$env: PufferLib's own trainer on the same configs and steps, ${#steps[@]} at once"
    for i in "${!steps[@]}"; do
        timeout $((CAP * 3 + 60)) "$VPY" benchmarks/train_throughput.py --direct "$env" "${steps[$i]}" \
            "$WORK/direct-$env-$i" --device cuda --config "$WORK/$env-config-$i.json" \
            >"$WORK/$env-direct-$i.json" 2>"$WORK/$env-direct-$i.err" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { tail -n 30 "$WORK/$env-direct-$i.err"; fail "$env: direct PufferLib run $i failed"; }
    done
    "$VPY" - "$env" "$runs" "$WORK" "$MIN_RATIO" <<'EOF' || fail "$env: steps/s under ${MIN_RATIO} of PufferLib's own (above)"
import json
import statistics
import sys
from pathlib import Path

env, runs_file, work, min_ratio = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
ratios = []
for i, run in enumerate(json.loads(Path(runs_file).read_text())):
    lines = (work / f"{env}-direct-{i}.json").read_text().strip().splitlines()
    if not lines:
        continue
    direct = json.loads(lines[-1])
    ratios.append(run["sps"] / direct["sps"])
    print(f"{env} trial {run['number']}: sweepd {run['sps']:.0f} steps/s, PufferLib {direct['sps']:.0f} steps/s "
          f"({direct['steps']} steps), ratio {ratios[-1]:.3f}")
if not ratios:
    sys.exit(f"{env}: no direct run finished")
median = statistics.median(ratios)
print(f"{env}: sweepd/PufferLib steps/s median {median:.3f} "
      f"({'within' if median >= min_ratio else 'OUTSIDE'} the 10% target)")
sys.exit(0 if median >= min_ratio else 1)
EOF
}

main() {
    say "$(date -u +%FT%TZ) on $(hostname), $(nproc) cores, sweepd at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '(no git)')"
    install_venv
    if [[ "$MODE" == install ]]; then
        if "$VENV/bin/sweepd" launch --help | grep -q -- "--trials-per-gpu"; then
            say "sweepd launch has --trials-per-gpu"
        else
            say "note: sweepd launch has no --trials-per-gpu yet; a full run stops there"
        fi
        say "install-only: done in $SECONDS s"
        return 0
    fi

    gpu_facts
    "$VENV/bin/sweepd" launch --help | grep -q -- "--trials-per-gpu" \
        || die "sweepd launch has no --trials-per-gpu option: issue 15 item 3 (several trials per GPU) is not in this tree"
    DEVICE_OPTION=()
    if "$VENV/bin/sweepd" launch --help | grep -q -- "--device"; then
        DEVICE_OPTION=(--device cuda)
    fi
    gpu_monitor >"$RESULTS/gpu_monitor.csv" 2>&1 &
    MONITOR_PID=$!
    trap 'kill "$MONITOR_PID" 2>/dev/null || true' EXIT
    for env in "${ENVS[@]}"; do
        run_sweep "$env"
        compare_direct "$env"
    done
    kill "$MONITOR_PID" 2>/dev/null || true
    "$VPY" - "$RESULTS/gpu_monitor.csv" <<'EOF' || true
import sys

rows = [line.strip().split(", ") for line in open(sys.argv[1]) if line.count(", ") == 3]
if rows:
    print(f"GPU during the sweeps: max utilization {max(int(r[1]) for r in rows)}%, "
          f"max memory {max(int(r[2]) for r in rows)} MiB, "
          f"most compute processes at once {max(int(r[3]) for r in rows)} ({len(rows)} samples)")
EOF

    if (( ${#FAILURES[@]} )); then
        say "GPU CHECK FAILED (${#FAILURES[@]}):"
        printf '  - %s\n' "${FAILURES[@]}"
        return 1
    fi
    say "GPU CHECK PASSED in $SECONDS s"
}

# Through a pipe rather than `exec > >(tee)`: the script ends only once the log is written.
main 2>&1 | tee "$RESULTS/gpu_check.log"
