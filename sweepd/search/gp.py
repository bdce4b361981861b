"""Exact Gaussian-process regression in torch (float64), small and fast enough to refit per suggestion.

Kernel: ``signal * Matern32(ARD lengthscales) + linear * <x - c, x' - c>`` plus white noise, where
``c`` is the mean of the training inputs (centring keeps the linear term from acting as a huge
offset far from the origin of basic space). Outputs are standardized before the fit.

Hyperparameters are fitted by L-BFGS (torch, bounds by a sigmoid reparametrization) on the log
marginal likelihood plus weak log-normal priors (a MAP fit: with a dozen points a pure
maximum-likelihood fit can collapse a lengthscale or the noise). Callers should run it with one
torch thread (see ``sweepd.search.carbs``), which is fastest for matrices this small.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

_JITTER = 1e-8

# Bounds and weak priors on log-hyperparameters, for standardized outputs and inputs in basic units.
_LS_BOUNDS = (math.log(0.03), math.log(50.0))
_SIGNAL_BOUNDS = (math.log(1e-3), math.log(20.0))
_LINEAR_BOUNDS = (math.log(1e-6), math.log(10.0))
_NOISE_BOUNDS = (math.log(1e-6), math.log(2.0))
_LS_PRIOR = (math.log(1.0), 1.5)
_SIGNAL_PRIOR = (0.0, 1.5)
_LINEAR_PRIOR = (math.log(0.1), 2.0)
_NOISE_PRIOR = (math.log(1e-2), 2.0)


@dataclass(frozen=True)
class Hyperparameters:
    """Log-hyperparameters of the kernel (standardized output units)."""

    log_lengthscales: np.ndarray
    log_signal: float
    log_linear: float
    log_noise: float

    def as_vector(self) -> np.ndarray:
        return np.concatenate([self.log_lengthscales, [self.log_signal, self.log_linear, self.log_noise]])

    @classmethod
    def from_vector(cls, v: np.ndarray) -> Hyperparameters:
        return cls(np.array(v[:-3], dtype=np.float64), float(v[-3]), float(v[-2]), float(v[-1]))


def _kernel(a: torch.Tensor, b: torch.Tensor, theta: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    d = a.shape[1]
    ls = theta[:d].exp()
    sa, sb = a / ls, b / ls
    d2 = ((sa * sa).sum(1)[:, None] + (sb * sb).sum(1)[None, :] - 2.0 * sa @ sb.T).clamp_min(0.0)
    r = (3.0 * d2 + 1e-12).sqrt()
    lin = (a - center) @ (b - center).T
    return theta[d].exp() * (1.0 + r) * torch.exp(-r) + theta[d + 1].exp() * lin


def _cholesky(k: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(k.shape[0], dtype=k.dtype)
    jitter = _JITTER
    while True:
        chol, info = torch.linalg.cholesky_ex(k + jitter * eye)
        if int(info) == 0 or jitter > 1e-2:
            return chol
        jitter *= 100.0


def _bounds_and_prior(d: int) -> tuple[torch.Tensor, ...]:
    bounds = [_LS_BOUNDS] * d + [_SIGNAL_BOUNDS, _LINEAR_BOUNDS, _NOISE_BOUNDS]
    priors = [_LS_PRIOR] * d + [_SIGNAL_PRIOR, _LINEAR_PRIOR, _NOISE_PRIOR]
    cols = (*zip(*bounds, strict=True), *zip(*priors, strict=True))
    return tuple(torch.tensor(col, dtype=torch.float64) for col in cols)


def _neg_log_posterior(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, center: torch.Tensor,
                       prior_mean: torch.Tensor, prior_sd: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Negative log marginal likelihood minus log prior, and its gradient in ``theta``.

    The gradient is written out (0.5 tr((K^-1 - a a^T) dK/dtheta)) rather than taken by autograd:
    for these small matrices autograd's bookkeeping cost more than the algebra.
    """
    d = x.shape[1]
    ls = theta[:d].exp()
    signal, linear, noise = theta[d].exp(), theta[d + 1].exp(), theta[d + 2].exp()
    a = x / ls
    sq = (a * a).sum(1)
    r = (3.0 * (sq[:, None] + sq[None, :] - 2.0 * a @ a.T).clamp_min(0.0)).sqrt()
    e = torch.exp(-r)
    matern = (1.0 + r) * e
    xc = x - center
    lin = xc @ xc.T
    k = signal * matern + linear * lin
    k.diagonal().add_(noise)
    chol = _cholesky(k)
    alpha = torch.cholesky_solve(y[:, None], chol)
    w = torch.cholesky_inverse(chol) - alpha @ alpha.T
    g = w * e
    grad = torch.empty(d + 3, dtype=torch.float64)
    grad[:d] = 3.0 * signal * ((a * a).T @ g.sum(1) - (a * (g @ a)).sum(0))
    grad[d] = 0.5 * signal * (w * matern).sum()
    grad[d + 1] = 0.5 * linear * (w * lin).sum()
    grad[d + 2] = 0.5 * noise * w.diagonal().sum()
    z = (theta - prior_mean) / prior_sd
    value = 0.5 * (y[:, None] * alpha).sum() + chol.diagonal().log().sum() + 0.5 * (z * z).sum()
    return float(value), grad + z / prior_sd


class GaussianProcess:
    """A GP posterior with fixed hyperparameters; ``fit`` chooses them, ``condition`` adds points."""

    def __init__(self, x: np.ndarray, y: np.ndarray, hyper: Hyperparameters,
                 y_mean: float, y_std: float, center: np.ndarray) -> None:
        self.hyper, self.y_mean, self.y_std = hyper, y_mean, y_std
        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self._center = torch.as_tensor(center, dtype=torch.float64)
        self._theta = torch.as_tensor(hyper.as_vector(), dtype=torch.float64)
        xt = torch.as_tensor(self.x)
        yt = torch.as_tensor((self.y - y_mean) / y_std)
        k = _kernel(xt, xt, self._theta, self._center)
        k = k + math.exp(hyper.log_noise) * torch.eye(len(self.x), dtype=torch.float64)
        self._xt = xt
        self._chol = _cholesky(k)
        self._alpha = torch.cholesky_solve(yt[:, None], self._chol)[:, 0]

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, max_iter: int = 30,
            init: Hyperparameters | None = None) -> GaussianProcess:
        """Fit hyperparameters (MAP, L-BFGS) to ``(x, y)`` and return the posterior."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        n, d = x.shape
        y_mean = float(y.mean())
        y_std = float(y.std()) if n > 1 and y.std() > 1e-12 else 1.0
        center = x.mean(0)
        if init is None:
            init = Hyperparameters(np.full(d, _LS_PRIOR[0]), 0.0, _LINEAR_PRIOR[0], math.log(0.05))
        xt = torch.as_tensor(x)
        yt = torch.as_tensor((y - y_mean) / y_std)
        ct = torch.as_tensor(center)

        lo, hi, prior_mean, prior_sd = _bounds_and_prior(d)
        v0 = torch.as_tensor(init.as_vector()).clamp(lo + 1e-3, hi - 1e-3)
        # Bounds by a sigmoid reparametrization, so torch's (unconstrained) L-BFGS can be used:
        # scipy's L-BFGS-B spent most of its time waking idle BLAS threads on a busy 2-core box.
        u = torch.logit((v0 - lo) / (hi - lo)).requires_grad_(True)

        def theta_of(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            sig = torch.sigmoid(w)
            return lo + (hi - lo) * sig, (hi - lo) * sig * (1.0 - sig)

        def closure() -> torch.Tensor:
            theta, dtheta = theta_of(u.detach())
            value, grad = _neg_log_posterior(theta, xt, yt, ct, prior_mean, prior_sd)
            u.grad = grad * dtheta
            return torch.tensor(value, dtype=torch.float64)

        best = v0.numpy()
        if max_iter > 0:
            try:
                opt = torch.optim.LBFGS([u], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
                opt.step(closure)
                fitted = theta_of(u.detach())[0].numpy()
                if np.all(np.isfinite(fitted)):
                    best = fitted
            except (RuntimeError, ValueError):
                # A numerically broken fit keeps the initial hyperparameters: a worse model, not a crash.
                pass
        return cls(x, y, Hyperparameters.from_vector(best), y_mean, y_std, center)

    @property
    def noise_var(self) -> float:
        """Observation-noise variance, in output units."""
        return math.exp(self.hyper.log_noise) * self.y_std**2

    def predict(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and latent (noise-free) variance at the rows of ``xq``, in output units."""
        with torch.no_grad():
            q = torch.as_tensor(np.asarray(xq, dtype=np.float64))
            ks = _kernel(self._xt, q, self._theta, self._center)
            mean = ks.T @ self._alpha
            v = torch.linalg.solve_triangular(self._chol, ks, upper=False)
            lin = ((q - self._center) ** 2).sum(1)
            prior_var = math.exp(self.hyper.log_signal) + math.exp(self.hyper.log_linear) * lin
            var = (prior_var - (v * v).sum(0)).clamp_min(1e-12)
        return (mean.numpy() * self.y_std + self.y_mean), var.numpy() * self.y_std**2

    def predict_given(self, xq: np.ndarray, x_new: np.ndarray, y_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``predict`` of the posterior that also saw ``(x_new, y_new)``, without refactorizing.

        The same as ``condition(x_new, y_new).predict(xq)`` at O(n^2 k) instead of O(n^3): the
        few new points update the posterior through its covariance with the query points.
        """
        with torch.no_grad():
            k = len(x_new)
            z = torch.as_tensor(np.concatenate([np.asarray(x_new, dtype=np.float64),
                                                np.asarray(xq, dtype=np.float64)]))
            ks = _kernel(self._xt, z, self._theta, self._center)
            mean = ks.T @ self._alpha
            v = torch.linalg.solve_triangular(self._chol, ks, upper=False)
            cov = _kernel(z, z, self._theta, self._center) - v.T @ v
            a = cov[:k, :k] + math.exp(self.hyper.log_noise) * torch.eye(k, dtype=torch.float64)
            b = cov[:k, k:]
            chol = _cholesky(a)
            resid = torch.as_tensor((np.asarray(y_new, dtype=np.float64) - self.y_mean) / self.y_std) - mean[:k]
            mean_q = mean[k:] + b.T @ torch.cholesky_solve(resid[:, None], chol)[:, 0]
            var_q = (cov[k:, k:].diagonal() - (b * torch.cholesky_solve(b, chol)).sum(0)).clamp_min(1e-12)
        return mean_q.numpy() * self.y_std + self.y_mean, var_q.numpy() * self.y_std**2

    def condition(self, x_new: np.ndarray, y_new: np.ndarray) -> GaussianProcess:
        """The posterior with extra points (same hyperparameters and output scaling)."""
        if len(x_new) == 0:
            return self
        x = np.concatenate([self.x, np.asarray(x_new, dtype=np.float64)])
        y = np.concatenate([self.y, np.asarray(y_new, dtype=np.float64)])
        return GaussianProcess(x, y, self.hyper, self.y_mean, self.y_std, self._center.numpy())
