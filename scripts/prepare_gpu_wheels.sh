#!/usr/bin/env bash
# Fill gpu_wheels/ (git-ignored) with everything benchmarks/gpu_check.sh installs on a GPU machine
# that has no network: Python 3.12, a CUDA torch, numpy 2.x, nvcc and Cython in its image, and no
# PufferLib. Run it here, where PyPI answers; the device tool carries the folder (carry: ["gpu_wheels"]).
#
# What goes in:
#   *.whl             every runtime requirement of sweepd and PufferLib 3 (and what they need in
#                     turn) as wheels for CPython 3.12 on manylinux x86_64, numpy<2 among them (the
#                     check's venv sees the image's packages, and this numpy shadows its 2.x);
#                     gym<=0.23, an sdist only on PyPI, built here into a pure-Python wheel
#   requirements.txt  what gpu_check.sh installs from them (`pip install --no-index`)
#   sdist/pufferlib-3.0.0.tar.gz
#                     PufferLib's sdist patched for the offline build by scripts/install_pufferlib.sh
#                     (`patch_sdist`, the one copy of those patches), without pufferlib/resources
#                     (72 MB of render textures and demo weights no training reads)
# What stays out, and why (the device tool carries 64 MiB in all, the working tree included):
#   torch (and its CUDA libraries)   the image's CUDA build is the point; sweepd's torch==2.13.0
#                                    pin is a CPU-box pin, so gpu_check.sh installs sweepd --no-deps
#   scipy (35 MB), pillow (7 MB)     in the image; requirements.txt still names them, so pip checks
#                                    that the image's versions fit (scipy with numpy<2 among them)
#   wandb (20 MB and its deps)       the check runs sweepd with --no-wandb; PufferLib imports it
#                                    only for its own wandb logger
#
# Usage: scripts/prepare_gpu_wheels.sh [--python-version X.Y] [--dest DIR]
#   --python-version  the GPU image's Python (default 3.12)
#   --dest            the folder to fill (default gpu_wheels; emptied first)
# Environment: PYTHON (the interpreter that runs pip here, default python3), SWEEPD_SIMPLE_INDEX.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
# shellcheck source=scripts/install_pufferlib.sh
source scripts/install_pufferlib.sh
say() { printf '[prepare_gpu_wheels] %s\n' "$*"; }
work="$(mktemp -d)"
trap 'cleanup; rm -rf "$work"' EXIT

PY_VERSION="3.12"
DEST="gpu_wheels"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --python-version) PY_VERSION="$2"; shift 2 ;;
        --dest) DEST="$2"; shift 2 ;;
        *) say "unknown argument: $1 (usage: $0 [--python-version X.Y] [--dest DIR])"; exit 2 ;;
    esac
done
MAX_MIB=60
FROM_IMAGE=(torch scipy pillow)
LEFT_OUT=(wandb)
# PufferLib's gym pin has no wheel on PyPI; gym is pure Python, so a wheel built here runs there.
SDIST_ONLY=("gym<=0.23")

# pip here must see PyPI alone: no local mirror or find-links from this box's pip config.
export PIP_CONFIG_FILE=/dev/null PIP_INDEX_URL="$SIMPLE_INDEX"
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_NO_INDEX
abi="cp${PY_VERSION/./}"
# The image's glibc is recent (Python 3.12.3 there); manylinux_2_35 and older run on any such box.
platforms=(--platform manylinux1_x86_64 --platform manylinux2010_x86_64 --platform manylinux2014_x86_64)
for minor in $(seq 17 35); do
    platforms+=(--platform "manylinux_2_${minor}_x86_64")
done
target=(--only-binary=:all: --python-version "$PY_VERSION" --implementation cp --abi "$abi" "${platforms[@]}")

# Emptied first (two versions of one package stop an offline install), but only a folder this
# script made, or an empty one.
if [[ -d "$DEST" && -n "$(ls -A "$DEST")" && ! -f "$DEST/requirements.txt" ]]; then
    say "$DEST is not empty and was not made by this script: give another --dest"
    exit 2
fi
rm -rf "$DEST"
mkdir -p "$DEST/sdist"
DEST="$(cd "$DEST" && pwd)"

# sweepd's runtime requirements (pyproject.toml) and PufferLib's (install_pufferlib.sh), each kept
# with its own specifiers; the image's torch replaces sweepd's pin.
mapfile -t sweepd_deps < <("$PYTHON" -c '
import tomllib
for req in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    print(req)')
roots=()
for req in "${sweepd_deps[@]}" "${PUFFER_DEPS[@]}" "$ALE_REQ"; do
    name="$("$PYTHON" -c 'import re, sys; print(re.split(r"[<>=!~;\[ ]", sys.argv[1], maxsplit=1)[0].lower())' "$req")"
    [[ "$name" == torch || " ${LEFT_OUT[*]} " == *" $name "* ]] && continue
    roots+=("$req")
done

say "building wheels PyPI lacks: ${SDIST_ONLY[*]}"
"$PYTHON" -m pip wheel -q --no-deps -w "$DEST" "${SDIST_ONLY[@]}"

say "resolving for CPython $PY_VERSION on manylinux x86_64: ${roots[*]}"
"$PYTHON" -m pip install -q --dry-run --ignore-installed "${target[@]}" --target "$work/target" \
    --find-links "$DEST" --report "$work/report.json" "${roots[@]}"

# The resolved set, less what the image provides or the check does without (and what only those
# need): one `name==version` a line.
"$PYTHON" - "$work/report.json" "$PY_VERSION" "${FROM_IMAGE[*]} ${LEFT_OUT[*]}" >"$work/pins.txt" <<'EOF'
import json, sys
try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pip always carries a copy
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

report, py_version, skip = sys.argv[1], sys.argv[2], {canonicalize_name(n) for n in sys.argv[3].split()}
env = default_environment() | {"python_version": py_version, "python_full_version": f"{py_version}.0"}
installs = json.load(open(report))["install"]
resolved = {canonicalize_name(i["metadata"]["name"]): i["metadata"] for i in installs}
todo = [(canonicalize_name(i["metadata"]["name"]), extra) for i in installs if i.get("requested")
        for extra in ["", *i.get("requested_extras", [])]]
keep: set[str] = set()
seen: set[tuple[str, str]] = set()
while todo:
    name, extra = todo.pop()
    if name in skip or (name, extra) in seen:
        continue
    seen.add((name, extra))
    keep.add(name)
    for text in resolved[name].get("requires_dist", []):
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(env | {"extra": extra}):
            todo += [(canonicalize_name(req.name), e) for e in ["", *req.extras]]
for name in sorted(keep):
    print(f"{name}=={resolved[name]['version']}")
EOF

say "downloading $(wc -l <"$work/pins.txt") wheels"
"$PYTHON" -m pip download -q --no-deps "${target[@]}" --find-links "$DEST" -d "$DEST" -r "$work/pins.txt"

{
    echo "# Installed by benchmarks/gpu_check.sh: pip install --no-index --find-links gpu_wheels -r this file."
    echo "# Written by scripts/prepare_gpu_wheels.sh. Not carried, taken from the image: ${FROM_IMAGE[*]}."
    printf '%s\n' "${roots[@]}"
} >"$DEST/requirements.txt"

fetch_patched_sdist
rm -rf "$SDIST_SRC/pufferlib/resources"
tar -czf "$DEST/sdist/pufferlib-$PUFFER_VERSION.tar.gz" -C "$(dirname "$SDIST_SRC")" "$(basename "$SDIST_SRC")"

say "contents:"
(cd "$DEST" && ls -S -s --block-size=K -- *.whl sdist/*.tar.gz | sed 's/^/    /')
size_kib="$(du -sk "$DEST" | cut -f1)"
say "$DEST: $((size_kib / 1024)) MiB ($size_kib KiB) in $(find "$DEST" -type f | wc -l) files"
say "left out: ${FROM_IMAGE[*]} (the image has them), ${LEFT_OUT[*]} (the check runs --no-wandb)"
if (( size_kib > MAX_MIB * 1024 )); then
    say "over the ${MAX_MIB} MiB this folder may take of the device tool's 64 MiB"
    exit 1
fi
