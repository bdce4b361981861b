import math

import numpy as np
import pytest

from sweepd.search import Observation, create_searcher
from sweepd.space import Param

PARAMS = [
    Param("lr", "log", 1e-5, 1e-1, 1e-3),
    Param("steps", "log", 1e3, 1e7, 1e5, integer=True),
    Param("epochs", "linear", 1, 8, 3, integer=True),
]


def toy(params):
    """Score peaks at lr=3e-3 and grows with steps; cost is proportional to steps."""
    lr_term = math.exp(-((math.log10(params["lr"]) + 2.5) ** 2))
    score = 100 * lr_term * (1 - math.exp(-params["steps"] / 3e5)) + params["epochs"]
    return score, params["steps"] / 1e3


def run(searcher, n, objective=toy):
    sugs = []
    for _ in range(n):
        sug = searcher.suggest()
        score, cost = objective(sug.params)
        searcher.observe(Observation(sug.params, score, cost, failed=False))
        sugs.append(sug)
    return sugs


def test_first_suggestion_is_the_center():
    sug = create_searcher("carbs", PARAMS, seed=3, max_suggestion_cost=1e4).suggest()
    assert sug.params == {"lr": 1e-3, "steps": 100000, "epochs": 3}
    assert sug.kind == "random"


def test_suggestions_are_valid_values_and_kinds_follow_the_cadence():
    s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=1e4,
                        num_random_samples=4, resample_frequency=5)
    sugs = run(s, 16)
    assert [x.kind for x in sugs[:4]] == ["random"] * 4
    # toy is noise-free: every front config's lead over cheaper ones is certain, a repeat would waste a run
    assert not [x for x in sugs if x.kind == "resample"]
    for sug in sugs:
        assert isinstance(sug.params["steps"], int) and 1e3 <= sug.params["steps"] <= 1e7
        assert isinstance(sug.params["epochs"], int) and 1 <= sug.params["epochs"] <= 8
        assert 1e-5 <= sug.params["lr"] <= 1e-1
    assert all(x.predicted_score is not None for x in sugs[4:])


def test_noisy_front_configs_are_resampled_on_the_cadence():
    rng = np.random.default_rng(0)

    def noisy(params):
        score, cost = toy(params)
        return score + rng.normal(0.0, 20.0), cost

    s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=1e4,
                        num_random_samples=4, resample_frequency=5)
    sugs = run(s, 19, noisy)
    resampled = [i for i, x in enumerate(sugs) if x.kind == "resample"]
    assert resampled and set(resampled) <= {8, 13, 18}
    for i in resampled:
        assert any(sugs[i].params == earlier.params for earlier in sugs[:i])


def test_same_seed_and_history_give_the_same_suggestions():
    a = run(create_searcher("carbs", PARAMS, seed=7, max_suggestion_cost=1e4), 12)
    b = run(create_searcher("carbs", PARAMS, seed=7, max_suggestion_cost=1e4), 12)
    assert [x.params for x in a] == [x.params for x in b]


def test_a_searcher_rebuilt_from_observations_and_pending_continues_exactly():
    live = create_searcher("carbs", PARAMS, seed=1, max_suggestion_cost=1e4)
    observations = []
    for sug in run(live, 9):
        score, cost = toy(sug.params)
        observations.append(Observation(dict(sug.params), score, cost))
    in_flight = [live.suggest().params for _ in range(3)]
    expected = live.suggest()

    rebuilt = create_searcher("carbs", PARAMS, seed=1, max_suggestion_cost=1e4)
    for obs in observations:
        rebuilt.observe(obs)
    for params in in_flight:
        rebuilt.add_pending(params)
    assert rebuilt.suggest() == expected


def test_parallel_pending_suggestions_are_all_different():
    s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=1e4)
    run(s, 8)
    pending = [s.suggest().params for _ in range(8)]
    keys = {tuple(sorted(p.items())) for p in pending}
    assert len(keys) == len(pending)


def test_forget_and_observe_clear_pending():
    s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=1e4)
    a, b = s.suggest(), s.suggest()
    assert s.history.n_pending == 2
    s.forget(a.params)
    s.observe(Observation(b.params, 1.0, 10.0))
    assert s.history.n_pending == 0


def test_the_cost_cap_is_honoured_when_cost_is_a_known_function_of_one_param():
    cap = 2000.0  # steps above 2e6 cost too much, and score keeps rising with steps
    s = create_searcher("carbs", PARAMS, seed=2, max_suggestion_cost=cap)
    sugs = run(s, 40)
    costs = [toy(x.params)[1] for x in sugs]
    assert max(costs) <= cap
    # and it does push up toward the cap rather than staying timid
    assert max(costs) > cap / 4


def test_the_cap_is_kept_when_even_the_center_costs_more():
    s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=20.0, num_random_samples=3)
    sugs = run(s, 14)
    later = [toy(x.params)[1] for x in sugs[6:]]
    assert np.median(later) <= 20.0
    assert all(x.kind != "random" or i < 6 for i, x in enumerate(sugs))


def test_failures_steer_the_search_away_from_a_crash_region():
    params = [Param("x", "linear", 0.0, 1.0, 0.3), Param("y", "linear", 0.0, 1.0, 0.5)]

    def crashy(p):
        return 10 * p["x"] - (p["y"] - 0.5) ** 2, 10.0, p["x"] > 0.6  # better toward the cliff

    s = create_searcher("carbs", params, seed=0, max_suggestion_cost=100.0)
    crashed = []
    for _ in range(30):
        sug = s.suggest()
        score, cost, failed = crashy(sug.params)
        s.observe(Observation(sug.params, 0.0 if failed else score, cost, failed))
        crashed.append(failed)
    assert sum(crashed[-15:]) <= 4
    assert sum(crashed[-15:]) < sum(crashed[5:15]) + 2


def test_caller_params_are_not_mutated_and_zero_cost_is_fine():
    s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=1e4, num_random_samples=2)
    for _ in range(6):
        sug = s.suggest()
        given = dict(sug.params)
        frozen = dict(given)
        s.observe(Observation(given, toy(given)[0], 0.0))
        assert given == frozen
        sug.params["lr"] = -1.0  # the caller owns the returned dict
    assert all(v > 0 for v in s.suggest().params.values())


def test_unknown_options_and_searchers_are_rejected():
    with pytest.raises(TypeError):
        create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=1.0, num_random=3)
    with pytest.raises(ValueError):
        create_searcher("bayes", PARAMS)


def test_repeated_configs_are_averaged_on_the_front():
    s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=1e4)
    a = {"lr": 1e-3, "steps": 100000, "epochs": 3}
    for score in (10.0, 14.0):
        s.observe(Observation(a, score, 100.0))
    s.observe(Observation({"lr": 1e-3, "steps": 10000, "epochs": 3}, 5.0, 10.0))
    front = s._front()
    i = next(j for j in front.front if front.count[j] == 2)
    assert front.score[i] == pytest.approx(12.0)
    assert front.stderr[i] == pytest.approx(2.0)


def test_suggest_leaves_the_callers_torch_threads_alone():
    import torch

    before = torch.get_num_threads()
    s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=1e4)
    run(s, 6)
    assert torch.get_num_threads() == before


def test_a_tiny_discrete_space_still_gets_distinct_pending_configs():
    params = [Param("a", "linear", 1, 3, 2, integer=True), Param("b", "pow2", 1, 4, 2)]
    s = create_searcher("carbs", params, seed=0, max_suggestion_cost=100.0)
    for _ in range(5):
        sug = s.suggest()
        s.observe(Observation(sug.params, sug.params["a"] * sug.params["b"], 1.0))
    pending = [tuple(sorted(s.suggest().params.items())) for _ in range(4)]
    assert len(set(pending)) == 4


def test_the_radius_grows_with_front_improvements_and_shrinks_back_with_misses():
    params = [Param("x", "linear", 0.0, 1.0, 0.5)]
    s = create_searcher("carbs", params, seed=0, max_suggestion_cost=1e4, num_random_samples=2)
    s.observe(Observation({"x": 0.1}, 1.0, 1.0))
    s.observe(Observation({"x": 0.2}, 50.0, 1000.0))  # warm-up: the span of costs is 1 to 1000
    for i in range(3):  # better and better inside the span: successes
        s.observe(Observation({"x": 0.3 + 0.1 * i}, 10.0 + i, 100.0))
    assert s._success_doublings() == pytest.approx(3 * 0.4 * 0.8)
    s.observe(Observation({"x": 0.9}, 99.0, 5000.0))  # costlier than every earlier run: neutral
    assert s._success_doublings() == pytest.approx(3 * 0.4 * 0.8)
    for i in range(4):  # worse than the front at their cost: misses
        s.observe(Observation({"x": 0.05 + 0.01 * i}, 0.5, 100.0))
    assert s._success_doublings() == pytest.approx(3 * 0.4 * 0.8 - 4 * 0.4 * 0.2)
    s.observe(Observation({"x": 0.01}, 0.0, 1.0, failed=True))  # a crash is a miss too
    assert s._success_doublings() == pytest.approx(3 * 0.4 * 0.8 - 5 * 0.4 * 0.2)


def test_candidate_steps_are_shaped_by_the_score_lengthscales():
    params = [Param("a", "linear", 0.0, 1.0, 0.5), Param("junk", "linear", 0.0, 1.0, 0.5)]
    s = create_searcher("carbs", params, seed=0, max_suggestion_cost=1e4)
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = {"a": float(rng.random()), "junk": float(rng.random())}
        s.observe(Observation(p, 10 * math.sin(6 * p["a"]), 10.0))
    shape = s._step_shape(s._models())
    assert shape[0] < 1.0 < shape[1]  # the knob that matters gets the shorter steps
    assert math.prod(shape) == pytest.approx(1.0)


def test_the_success_rule_sizes_only_the_start_of_a_sweep():
    params = [Param("x", "linear", 0.0, 1.0, 0.5)]
    s = create_searcher("carbs", params, seed=0, max_suggestion_cost=1e4, num_random_samples=2)
    s.observe(Observation({"x": 0.0}, 0.0, 1.0))
    s.observe(Observation({"x": 1.0}, 0.0, 1000.0))
    for i in range(58):  # every run of the first 60 improves the front at cost 100
        s.observe(Observation({"x": 0.001 + i / 100}, 1.0 + i, 100.0))
    assert s._success_doublings() == pytest.approx(2.0)
    for i in range(10):  # later improvements no longer widen the search: it settles back
        s.observe(Observation({"x": 0.002 + i / 100}, 100.0 + i, 100.0))
    assert s._success_doublings() == pytest.approx(2.0 - 10 * 0.4 * 0.2)
