"""Learning curves as evidence and the stop rule (``Searcher.report``)."""
import math

import numpy as np
import pytest

from sweepd.search import Observation, create_searcher
from sweepd.search.history import CurvePoint
from sweepd.space import Param

PARAMS = [
    Param("lr", "log", 1e-5, 1e-1, 1e-3),
    Param("steps", "log", 1e3, 1e7, 1e5, integer=True),
]
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def score_at(params, steps):
    """Score peaks at lr=3e-3 and grows with the steps trained."""
    return 100 * math.exp(-((math.log10(params["lr"]) + 2.5) ** 2)) * (1 - math.exp(-steps / 3e5))


def cost_of(steps):
    return steps / 1e3 + 1.0


def curve(params):
    """The run's curve points before its end: (cost, score, steps) at FRACTIONS of its steps."""
    return [CurvePoint(cost_of(f * params["steps"]), score_at(params, f * params["steps"]), f * params["steps"])
            for f in FRACTIONS]


def sweep(searcher, n, *, with_steps=False):
    """Run n trials one at a time, each reporting its curve; returns (observations, stop decisions)."""
    observations, decisions = [], []
    for _ in range(n):
        params = dict(searcher.suggest().params)
        end = Observation(params, score_at(params, params["steps"]), cost_of(params["steps"]))
        said = []
        for pt in curve(params):
            stop = searcher.report(params, pt.cost, pt.score, steps=pt.steps if with_steps else None)
            said.append(stop)
            if stop:
                end = Observation(params, pt.score, pt.cost)
                break
        searcher.observe(end)
        observations.append(end)
        decisions.append(said)
    return observations, decisions


def trained(n=14, **options):
    s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=5000.0, **options)
    sweep(s, n)
    return s


def reports(searcher, params, scores):
    """Feed a curve of the given scores at FRACTIONS of params' run; the decision at each point."""
    return [searcher.report(params, cost_of(f * params["steps"]), sc) for f, sc in zip(FRACTIONS, scores, strict=False)]


def test_a_hopeless_curve_is_stopped_and_a_promising_one_is_not():
    s = trained()
    hopeless = {"lr": 1e-5, "steps": 2_000_000}  # far from the best lr: scores stay near zero
    assert any(reports(s, hopeless, [0.1] * 9))
    promising = {"lr": 3.1e-3, "steps": 2_000_000}
    assert not any(reports(s, promising, [score_at(promising, f * 2e6) for f in FRACTIONS]))


def test_nothing_is_stopped_before_the_minimum_fraction_or_with_early_stop_off():
    s = trained()
    hopeless = {"lr": 1e-5, "steps": 2_000_000}
    assert not any(reports(s, hopeless, [0.1, 0.1]))  # 10% and 20% of the run: too early
    off = trained(early_stop=False)
    assert not any(reports(off, hopeless, [0.1] * 9))


def test_resamples_and_unstoppable_trials_are_never_stopped():
    s = trained()
    front = s._front()
    resample = dict(s._make(front.x[front.front[-1]], None, None, "resample").params)
    assert s.history.seen(resample)
    assert not any(reports(s, resample, [0.0] * 9))
    hopeless = {"lr": 1e-5, "steps": 2_000_000}
    assert not any(s.report(hopeless, cost_of(f * 2e6), 0.0, stoppable=False) for f in FRACTIONS)


def test_a_stopped_run_is_observed_at_the_steps_it_trained():
    s = trained(budget_param="steps")
    params = {"lr": 1e-5, "steps": 2_000_000}
    for f in FRACTIONS:
        if s.report(params, cost_of(f * 2e6), 0.1, steps=f * 2e6):
            break
    else:
        pytest.fail("a hopeless run was never stopped")
    s.observe(Observation(params, 0.1, cost_of(f * 2e6)))
    h = s.history
    assert h.end_fraction[-1] == pytest.approx(f)
    assert s.params[1].from_basic(h.x[-1][1]) == round(f * 2e6)
    assert h.planned_keys[-1] == h.key(h.basic(params)) != h.keys[-1]


def test_a_truncated_observation_is_the_same_whether_told_or_reported():
    told = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=5000.0, budget_param="steps")
    params = {"lr": 1e-3, "steps": 1_000_000}
    points = tuple(CurvePoint(cost_of(f * 1e6), f, f * 1e6) for f in (0.1, 0.2, 0.3))
    told.observe(Observation(params, 0.4, cost_of(4e5), curve=points, truncated=True, steps=4e5))
    reported = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=5000.0, budget_param="steps")
    for pt in (*points, CurvePoint(cost_of(4e5), 0.4, 4e5)):
        reported.report(params, pt.cost, pt.score, steps=pt.steps)
    reported.history.stopped.add(reported.history.key(reported.history.basic(params)))
    reported.observe(Observation(params, 0.4, cost_of(4e5)))
    a, b = told.history, reported.history
    assert a.keys == b.keys and a.end_fraction == b.end_fraction == [pytest.approx(0.4)]
    assert [(r.fraction, r.cost, r.score) for r in a.curves[0]] == [(r.fraction, r.cost, r.score) for r in b.curves[0]]


def test_a_run_cut_at_an_unknown_length_is_a_front_point_of_its_own_not_a_config():
    s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=5000.0)
    for steps in (1e4, 1e5, 1e6):
        p = {"lr": 3e-3, "steps": int(steps)}
        s.observe(Observation(p, score_at(p, steps), cost_of(steps)))
    cut = {"lr": 1e-2, "steps": 3_000_000}
    s.observe(Observation(cut, 99.0, 300.0, truncated=True))
    front = s._front()
    i = int(np.flatnonzero(front.score == 99.0)[0])
    # 99 is reachable at 300 s (run the config, stop there): the bar a new run must beat, not a config to repeat
    assert i in front.front and not front.runnable[i] and front.runnable.sum() == 3
    assert front.dominated_below(400.0) == 99.0
    assert s.history.seen(cut)
    s.observe(Observation(cut, 50.0, 3000.0))  # the full run of that config is averaged apart from the cut one
    front = s._front()
    assert {50.0, 99.0} <= set(front.score.tolist()) and front.runnable.sum() == 4 and front.count.max() == 1


def test_stop_decisions_are_the_same_after_rebuilding_from_the_history():
    live = create_searcher("carbs", PARAMS, seed=3, max_suggestion_cost=5000.0)
    history, _ = sweep(live, 12)
    # Keep the curves the live searcher received, as the DB does, and mark the stopped runs truncated.
    stored = [Observation(o.params, o.score, o.cost, truncated=o.cost < cost_of(o.params["steps"]),
                          curve=tuple(pt for pt in curve(dict(o.params)) if pt.cost < o.cost))
              for o in history]
    in_flight = [dict(live.suggest().params) for _ in range(2)]
    running = {"lr": 2e-5, "steps": 1_500_000}
    scores = [0.2 * f for f in range(9)]
    expected = reports(live, running, scores)

    rebuilt = create_searcher("carbs", PARAMS, seed=3, max_suggestion_cost=5000.0)
    for obs in stored:
        rebuilt.observe(obs)
    for params in in_flight:
        rebuilt.add_pending(params)
    assert reports(rebuilt, running, scores) == expected
    assert rebuilt.history.keys == live.history.keys
    assert rebuilt.history.end_fraction == live.history.end_fraction
    assert rebuilt.suggest() == live.suggest()


def test_curve_points_enter_the_score_model():
    s = trained(8)
    models = s._models()
    assert models.with_u
    n_finals = int(s._finals().sum())
    assert len(models.score.x) > n_finals  # curve rows beside the finals
    assert len(models.score.x) <= n_finals + s.curve_points * s.history.n_observed


def test_random_search_reports_never_stop():
    s = create_searcher("random", PARAMS, seed=0, early_stop=True)
    params = dict(s.suggest().params)
    assert not any(s.report(params, c, 0.0) for c in (1.0, 2.0, 3.0))
    s.observe(Observation(params, 0.0, 4.0))
    assert len(s.history.curves[0]) == 3
