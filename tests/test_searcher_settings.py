"""Every `[sweep]` search setting reaches the sweep's searcher (issue 13: today only two did)."""

from __future__ import annotations

import pytest
from toy import write_toy_sweep

from sweepd.advisor import searcher_options
from sweepd.search import create_searcher
from sweepd.settings import SpecError
from sweepd.spec import load_spec
from sweepd.store.db import open_store
from sweepd.store.sweeps import create_sweep

SETTINGS = {"num_random_samples": 7, "resample_frequency": 3, "initial_search_radius": 0.55,
            "min_pareto_cost_fraction": 0.2, "cost_quantile": 0.75}


def searcher_for(tmp_path, sqlite_url, searcher: str):
    spec = load_spec(str(write_toy_sweep(tmp_path, trials=4, steps=2)), {**SETTINGS, "searcher": searcher})
    sweep = create_sweep(open_store(sqlite_url), spec.to_json(), owner="tester")
    return create_searcher(searcher, list(spec.params), seed=sweep.seed,
                           max_suggestion_cost=sweep.max_suggestion_cost, **searcher_options(sweep, spec))


def test_carbs_gets_every_search_setting_of_the_sweep_file(tmp_path, sqlite_url):
    carbs = searcher_for(tmp_path, sqlite_url, "carbs")
    assert (carbs.num_random_samples, carbs.resample_frequency) == (7, 3)
    assert (carbs.radius, carbs.cheap_fraction) == (0.55, 0.2)
    assert carbs.cost_z == pytest.approx(0.6745, abs=1e-4)  # the standard normal's 0.75 quantile


def test_optuna_and_protein_get_the_warm_up_and_resample_settings(tmp_path, sqlite_url):
    pytest.importorskip("optuna")
    assert searcher_for(tmp_path, sqlite_url, "optuna").n_startup_trials == 7
    (tmp_path / "p").mkdir()
    protein = searcher_for(tmp_path / "p", sqlite_url, "protein")
    assert (protein.num_random_samples, protein.resample_frequency) == (7, 3)


@pytest.mark.parametrize(("key", "value"), [("initial_search_radius", 0.0), ("min_pareto_cost_fraction", 1.0),
                                            ("cost_quantile", 1.5)])
def test_a_search_setting_out_of_range_is_refused_naming_the_file(tmp_path, key, value):
    path = write_toy_sweep(tmp_path, trials=4, steps=2)
    path.write_text(path.read_text().replace("[sweep]\n", f"[sweep]\n{key} = {value}\n"))
    with pytest.raises(SpecError, match=f"{key} must be in") as error:
        load_spec(str(path))
    assert str(path.name) in str(error.value)
