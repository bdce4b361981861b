"""Commands on sweep files: `validate`, `show`, `convert` (nothing is run or written)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.text import Text

from sweepd.cli.options import JsonOption
from sweepd.cli.output import console, print_json
from sweepd.spec import load_spec


def validate(file: Annotated[str, typer.Argument(help="Sweep file path or sweep name.")]) -> None:
    """Check a sweep file (syntax, keys, ranges, env) without running or writing anything."""
    spec = load_spec(file)
    console.print(Text.assemble(("ok", "green"), f": {spec.name}: env={spec.env} trainer={spec.trainer} "
                                f"{len(spec.params)} searched params, cost cap "
                                f"{spec.settings.max_suggestion_cost:g} s, {spec.settings.max_trials} trials "
                                f"({spec.source})"))


def show(
    name: Annotated[str | None, typer.Argument(help="Sweep name or file; leave out to list every sweep name "
                                                    "and PufferLib env.")] = None,
    device: Annotated[str | None, typer.Option(
        help="Resolve for trials on cpu or cuda (default: the sweep file's [sweep] device, else this box's "
             "class): PufferLib configs are sized and searched per device.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a resolved sweep: params (space, range, centre), defaults, where each value came from, and
    the env family's CPU and CUDA sizings (batch geometry, env counts) beside each other."""
    from sweepd import view

    if name is None:
        from sweepd.puffer_ini import env_names
        from sweepd.spec import sweep_dirs

        files = sorted({p.stem for d in sweep_dirs() if d.is_dir() for p in d.glob("*.toml")})
        if as_json:
            print_json({"sweep_files": files, "pufferlib": env_names()})
            return
        console.print(view.names_table(files, env_names()))
        return
    spec, origins, notes = _resolved(name, device)
    sizings = _sizings(spec)
    if as_json:
        print_json({"spec": spec.to_json(), "origins": origins, "notes": notes, "device": spec.settings.device,
                    "sizing": sizings})
        return
    console.print(view.spec_view(spec, origins, notes))
    if sizings is not None:
        mine = sizings[spec.settings.device]
        defaults = {f"{s}.{k}": v for s, values in spec.defaults.items() for k, v in values.items()}
        overridden = {k for k in mine if k in defaults and defaults[k] != mine[k]} | {p.name for p in spec.params}
        console.print(view.sizing_view(spec.env, spec.settings.device, sizings, overridden))


def convert(name: Annotated[str, typer.Argument(help="Sweep name or file (e.g. a PufferLib env: puffer_pong).")]
            ) -> None:
    """Write a resolved sweep as a sweepd sweep file on stdout: `sweepd convert NAME > sweeps/NAME.toml`."""
    from sweepd.convert import to_toml

    spec, origins, notes = _resolved(name, None)
    sys.stdout.write(to_toml(spec, origins, [f"{n['name']}: {n['action']}: {n['reason']}" for n in notes]))


def _resolved(name: str, device: str | None) -> tuple[Any, dict[str, str], list[dict[str, str]]]:
    """The spec for `name` on `device` (None: the file's, else this box's class), with origins and
    notes when it comes from PufferLib's configs."""
    from sweepd.host import box_device
    from sweepd.spec import find_sweep_file

    spec = load_spec(name, {"device": device}, device=box_device())
    if find_sweep_file(name).suffix != ".ini":
        return spec, {}, []
    from sweepd.puffer_config import sweep_from_config

    puffer = sweep_from_config(spec.name, device=spec.settings.device)
    return spec, dict(puffer.origins), [asdict(n) for n in puffer.notes]


def _sizings(spec: Any) -> dict[str, dict[str, Any]] | None:
    """The env family's sizing per device, as {"cpu": {"train.batch_size": ...}, "cuda": {...}};
    None for a command trainer."""
    if spec.trainer != "puffer":
        return None
    from sweepd import envs
    from sweepd.envs.family import MANAGED_TRAIN_KEYS
    from sweepd.settings import DEVICES

    family = envs.get(spec.env)
    return {device: {f"{section}.{key}": value for section, values in family.sizing(device).items()
                     for key, value in values.items() if not (section == "train" and key in MANAGED_TRAIN_KEYS)}
            for device in DEVICES}
