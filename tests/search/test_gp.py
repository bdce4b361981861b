import numpy as np

from sweepd.search.gp import GaussianProcess


def test_gp_recovers_a_known_smooth_function():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (40, 2))

    def f(z):
        return np.sin(2 * z[:, 0]) + 0.5 * z[:, 1] ** 2

    gp = GaussianProcess.fit(x, f(x) + rng.normal(0, 0.05, 40), max_iter=50)
    xq = rng.uniform(-1.5, 1.5, (200, 2))
    mean, var = gp.predict(xq)
    assert np.sqrt(np.mean((mean - f(xq)) ** 2)) < 0.1
    assert gp.noise_var < 0.05
    # confident near the data, uncertain far from it
    _, var_far = gp.predict(np.array([[8.0, 8.0]]))
    assert var_far[0] > 10 * np.median(var)


def test_gp_ignores_an_irrelevant_input():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (30, 2))
    gp = GaussianProcess.fit(x, np.cos(3 * x[:, 0]), max_iter=50)
    assert gp.hyper.log_lengthscales[1] > gp.hyper.log_lengthscales[0] + 1.0


def test_conditioning_on_a_believed_point_shrinks_its_variance():
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (15, 1))
    gp = GaussianProcess.fit(x, x[:, 0] ** 2, max_iter=30)
    q = np.array([[1.8]])
    mean, var = gp.predict(q)
    mean2, var2 = gp.condition(q, mean).predict(q)
    assert var2[0] < 0.2 * var[0]
    assert np.allclose(mean2, mean, atol=1e-3)


def test_predict_given_matches_conditioning():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    y = np.sin(x).sum(1) + 0.05 * rng.normal(size=30)
    gp = GaussianProcess.fit(x, y, max_iter=10)
    x_new, y_new, xq = rng.normal(size=(3, 3)), rng.normal(size=3), rng.normal(size=(5, 3))
    mean, var = gp.predict_given(xq, x_new, y_new)
    mean_ref, var_ref = gp.condition(x_new, y_new).predict(xq)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(var, var_ref, rtol=1e-5, atol=1e-8)
