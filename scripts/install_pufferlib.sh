#!/usr/bin/env bash
# Install PufferLib 3.0.0, ale-py and the GPUDrive sample map into the active Python environment.
#
# Why a script: PyPI has only an sdist for pufferlib 3.0.0, and its setup.py downloads raylib (web)
# and box2d archives from GitHub at build time, which fails on boxes without GitHub access.
# The Linux raylib it links the C envs against (raylib-5.5_linux_amd64/lib/libraylib.a) is already
# inside the sdist, so the downloads only serve the web build and impulse_wars (the one env that
# links box2d). Offline recipe: empty placeholder folders stop the downloads, impulse_wars is left
# out, and nvcc is hidden from PATH when torch has no CUDA (setup.py builds the CUDA kernel as soon
# as `nvcc` is on PATH, which fails against a CPU torch).
#
# Order: already installed -> cached wheel -> plain `pip install` (GitHub reachable) -> offline build.
# Then: ale-py (its wheel ships the Atari ROMs) and the GPUDrive sample map.
#
# Environment:
#   PYTHON                 interpreter to install into (default: python on PATH)
#   SWEEPD_WHEEL_CACHE     where built wheels are kept (default: ~/.cache/sweepd/wheels, one subfolder
#                          per patch set)
#   SWEEPD_GPUDRIVE_DATA   where the GPUDrive map tree goes (default: ~/.cache/sweepd/gpudrive)
#   SWEEPD_FORCE_BUILD=1   skip the GitHub check and build offline
#
# Usage: . .venv/bin/activate && scripts/install_pufferlib.sh
#
# Sourced (`source scripts/install_pufferlib.sh`), it only defines the settings and functions below:
# scripts/prepare_gpu_wheels.sh and benchmarks/gpu_check.sh patch and build PufferLib with the same
# `patch_sdist` and `build_wheel`, so the offline recipe lives here alone.
set -euo pipefail

PUFFER_VERSION="3.0.0"
PYTHON="${PYTHON:-python}"
# The subfolder names the patch set: a wheel built with other patches is never reused.
WHEEL_CACHE="${SWEEPD_WHEEL_CACHE:-$HOME/.cache/sweepd/wheels}/offline-2"
GPUDRIVE_DATA="${SWEEPD_GPUDRIVE_DATA:-$HOME/.cache/sweepd/gpudrive}"
SIMPLE_INDEX="${SWEEPD_SIMPLE_INDEX:-https://pypi.org/simple}"
# Runtime deps of pufferlib that its setup.py lists; numpy<2 because its C extensions and
# pufferlib.emulation are built against the 1.x ABI.
# Left out: neptune (only PufferLib's --neptune logger imports it; it pins python-dateutil<3) and
# shimmy (only the procgen/nethack/griddly/dm_lab adapters use it; its gymnasium plugin imports
# ale_py.roms.utils, gone since ale-py 0.9, and prints a traceback on every `import gymnasium`).
# pynvml comes from nvidia-ml-py: the `pynvml` package is a deprecated shim that prints a
# FutureWarning on every torch.cuda import.
PUFFER_DEPS=("numpy<2" "gym<=0.23" "gymnasium<=0.29.1" "pettingzoo<=1.24.1"
             psutil nvidia-ml-py rich rich_argparse imageio pyro-ppl heavyball wandb)
# ale-py 0.9 is the line PufferLib 3.0 pins (0.10+ expects gymnasium 1.x); its wheel has the ROMs.
ALE_REQ="ale-py>=0.9,<0.10"

say() { printf '[install_pufferlib] %s\n' "$*"; }

puffer_installed() {
    "$PYTHON" - "$PUFFER_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
import pufferlib.pufferl  # noqa: F401  (also loads the compiled advantage kernel, pufferlib._C)
from pufferlib.ocean.snake import binding  # noqa: F401  (one compiled C env)
sys.exit(0 if version("pufferlib") == sys.argv[1] else 1)
EOF
}

torch_has_cuda() {
    "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.version.cuda else 1)'
}

# PATH without any folder that holds an nvcc, so setup.py builds the CPU-only advantage kernel.
path_without_nvcc() {
    local out="" dir
    local IFS=':'
    for dir in $PATH; do
        [[ -x "$dir/nvcc" ]] && continue
        out="${out:+$out:}$dir"
    done
    printf '%s' "$out"
}

github_reachable() {
    [[ "${SWEEPD_FORCE_BUILD:-0}" == "1" ]] && return 1
    curl -sSfI --max-time 5 https://github.com/raysan5/raylib/releases >/dev/null 2>&1
}

cached_wheel() {
    local found=("$WHEEL_CACHE"/pufferlib-"$PUFFER_VERSION"-*.whl)
    [[ -f "${found[0]}" ]] && printf '%s' "${found[0]}"
    return 0
}

# Fetches the sdist from the simple index, checking the sha256 the index publishes.
# (`pip download` cannot be used: it prepares metadata by running setup.py, which downloads.)
download_sdist() {
    local dest="$1"
    "$PYTHON" - "$SIMPLE_INDEX" "$PUFFER_VERSION" "$dest" <<'EOF'
import hashlib, json, sys, urllib.request
index, version, dest = sys.argv[1:]
req = urllib.request.Request(f"{index.rstrip('/')}/pufferlib/",
                             headers={"Accept": "application/vnd.pypi.simple.v1+json"})
files = json.load(urllib.request.urlopen(req, timeout=60))["files"]
name = f"pufferlib-{version}.tar.gz"
entry = next((f for f in files if f["filename"] == name), None)
if entry is None:
    sys.exit(f"{name} not found on {index}")
with urllib.request.urlopen(entry["url"], timeout=600) as resp, open(dest, "wb") as out:
    digest = hashlib.sha256()
    while chunk := resp.read(1 << 20):
        digest.update(chunk)
        out.write(chunk)
if digest.hexdigest() != entry["hashes"]["sha256"]:
    sys.exit(f"sha256 mismatch for {name}: got {digest.hexdigest()}")
EOF
}

# The offline recipe, applied to the unpacked sdist in `src`; running it twice changes nothing.
patch_sdist() {
    local src="$1"
    say "patching the sdist: placeholder folders for the GitHub downloads, impulse_wars left out"
    mkdir -p "$src/raylib-5.5_webassembly" "$src/box2d-web" \
             "$src/box2d-linux-amd64/include" "$src/box2d-linux-amd64/src"
    rm -rf "$src/pufferlib/ocean/impulse_wars"
    # Drop neptune and shimmy from install_requires (why: see PUFFER_DEPS above).
    sed -i -e "/^        'neptune',$/d" -e "s/^    'shimmy\[gym-v21\]',$//" "$src/setup.py"
    # pynvml from nvidia-ml-py (why: see PUFFER_DEPS above), so pip sees no missing requirement.
    sed -i -e "s/^\(\s*\)'pynvml',/\1'nvidia-ml-py',/" "$src/setup.py"
}

# Builds the pufferlib wheel from `src` (a patched source folder or archive) into `out`, against the
# numpy and torch already installed in $PYTHON (--no-build-isolation). With a CUDA torch and nvcc
# on PATH, setup.py also compiles the CUDA advantage kernel. SWEEPD_BUILD_JOBS=N compiles N
# extensions at once (setuptools' build_ext --parallel, through DIST_EXTRA_CONFIG; MAX_JOBS for
# torch's ninja build); unset, one at a time.
build_wheel() {
    local src="$1" out="$2" start jobs="${SWEEPD_BUILD_JOBS:-}" extra_config=""
    local build_env=("PATH=$PATH")
    if ! torch_has_cuda; then
        build_env=("PATH=$(path_without_nvcc)")
        say "torch has no CUDA: building with nvcc hidden from PATH (CPU advantage kernel)"
    fi
    mkdir -p "$out"
    if [[ -n "$jobs" ]]; then
        extra_config="$(mktemp --suffix .cfg)"
        printf '[build_ext]\nparallel = %s\n' "$jobs" >"$extra_config"
        build_env+=("DIST_EXTRA_CONFIG=$extra_config" "MAX_JOBS=$jobs")
    fi
    say "building the wheel (about 1 minute on 2 cores${jobs:+, $jobs jobs at once})"
    start=$SECONDS
    # Status kept by hand: a caller may run this in a test (`if build_wheel ...`), where set -e is off.
    local status=0
    env "${build_env[@]}" "$PYTHON" -m pip wheel --no-build-isolation --no-deps -w "$out" "$src" || status=$?
    rm -f "$extra_config"
    if (( status != 0 )); then
        say "building the wheel failed (pip exit $status)"
        return "$status"
    fi
    say "wheel built in $((SECONDS - start)) s"
}

BUILD_DIR=""
cleanup() { [[ -n "$BUILD_DIR" ]] && rm -rf "$BUILD_DIR"; return 0; }

# Downloads the sdist into a fresh temporary folder (removed on exit) and patches it; sets SDIST_SRC.
fetch_patched_sdist() {
    BUILD_DIR="$(mktemp -d)"
    say "downloading the pufferlib $PUFFER_VERSION sdist from $SIMPLE_INDEX"
    download_sdist "$BUILD_DIR/pufferlib-$PUFFER_VERSION.tar.gz"
    tar -xzf "$BUILD_DIR/pufferlib-$PUFFER_VERSION.tar.gz" -C "$BUILD_DIR"
    rm "$BUILD_DIR/pufferlib-$PUFFER_VERSION.tar.gz"
    SDIST_SRC="$BUILD_DIR/pufferlib-$PUFFER_VERSION"
    patch_sdist "$SDIST_SRC"
}

build_wheel_offline() {
    fetch_patched_sdist
    build_wheel "$SDIST_SRC" "$WHEEL_CACHE"
    say "wheel: $(cached_wheel)"
}

install_pufferlib() {
    if puffer_installed; then
        say "pufferlib $PUFFER_VERSION already installed"
        return
    fi
    say "installing build requirements: numpy<2, Cython, wheel (torch must already be installed)"
    "$PYTHON" -c 'import torch' || { say "install torch first (see pyproject.toml)"; exit 1; }
    "$PYTHON" -m pip install "numpy<2" Cython wheel setuptools
    local wheel
    wheel="$(cached_wheel)"
    if [[ -z "$wheel" ]] && github_reachable; then
        say "GitHub reachable: plain pip install pufferlib==$PUFFER_VERSION"
        if "$PYTHON" -m pip install --no-build-isolation --no-deps "pufferlib==$PUFFER_VERSION"; then
            "$PYTHON" -m pip install "${PUFFER_DEPS[@]}"
            return
        fi
        say "plain install failed: falling back to the offline build"
    fi
    if [[ -z "$wheel" ]]; then
        build_wheel_offline
        wheel="$(cached_wheel)"
    else
        say "using cached wheel $wheel"
    fi
    # --no-deps for the wheel: a wheel built by plain pip elsewhere may still list neptune.
    "$PYTHON" -m pip install --no-deps "$wheel"
    "$PYTHON" -m pip install "${PUFFER_DEPS[@]}"
}

install_ale() {
    if "$PYTHON" - "$ALE_REQ" <<'EOF' >/dev/null 2>&1; then
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
import ale_py.roms
ale_py.roms.get_rom_path("breakout")
sys.exit(0 if Requirement(sys.argv[1]).specifier.contains(version("ale-py")) else 1)
EOF
        say "ale-py with ROMs already installed"
        return
    fi
    say "installing ale-py (its wheel ships the Atari ROMs)"
    "$PYTHON" -m pip install "$ALE_REQ"
}

# puffer_gpudrive's C code opens resources/gpudrive/binaries/map_%03d.bin relative to the working
# directory; the sdist ships one sample map (map_942.bin). sweepd.envs.gpudrive runs the env from
# $GPUDRIVE_DATA, where that map is map_000.bin (so num_maps = 1).
install_gpudrive_map() {
    local sample target
    sample="$("$PYTHON" -c 'import os, pufferlib; print(os.path.join(os.path.dirname(pufferlib.__file__), "resources", "gpudrive", "map_942.bin"))')"
    target="$GPUDRIVE_DATA/resources/gpudrive/binaries/map_000.bin"
    if [[ ! -f "$sample" ]]; then
        say "GPUDrive sample map not found at $sample"
        exit 1
    fi
    if cmp -s "$sample" "$target"; then
        say "GPUDrive sample map already at $target"
        return
    fi
    mkdir -p "$(dirname "$target")"
    cp "$sample" "$target"
    say "GPUDrive sample map copied to $target"
}

main() {
    trap cleanup EXIT
    install_pufferlib
    install_ale
    install_gpudrive_map
    puffer_installed || { say "pufferlib $PUFFER_VERSION still does not import"; exit 1; }
    say "done: $("$PYTHON" -c 'from importlib.metadata import version as v; print("pufferlib", v("pufferlib"), "ale-py", v("ale-py"))')"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
