from sweepd.search import Observation, create_searcher
from sweepd.space import Param

PARAMS = [Param("lr", "log", 1e-5, 1e-1, 1e-3), Param("batch", "pow2", 16, 4096, 256),
          Param("gamma", "logit", 0.8, 0.999, 0.99)]


def test_random_search_is_in_the_box_and_deterministic():
    a = create_searcher("random", PARAMS, seed=4, max_suggestion_cost=10.0, num_random_samples=2)
    b = create_searcher("random", PARAMS, seed=4, max_suggestion_cost=10.0)
    for _ in range(20):
        sa, sb = a.suggest(), b.suggest()
        assert sa == sb and sa.kind == "random"
        assert 1e-5 <= sa.params["lr"] <= 1e-1 and 0.8 <= sa.params["gamma"] <= 0.999
        assert sa.params["batch"] in {16, 32, 64, 128, 256, 512, 1024, 2048, 4096}
        a.observe(Observation(sa.params, 1.0, 1.0))
        b.observe(Observation(sb.params, 1.0, 1.0))
