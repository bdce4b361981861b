"""Exact Gaussian-process regression in torch (float64), small and fast enough to refit per suggestion.

Kernel: ``signal * Matern32(ARD lengthscales) + linear * <x - c, x' - c>`` plus white noise, where
``c`` is the mean of the training inputs (centring keeps the linear term from acting as a huge
offset far from the origin of basic space). Outputs are standardized before the fit.

Hyperparameters are fitted by L-BFGS-B (scipy) on the log marginal likelihood plus weak log-normal
priors (a MAP fit: with a dozen points a pure maximum-likelihood fit can collapse a lengthscale or
the noise). Torch computes the value and gradient; callers should run it with one torch thread
(see ``sweepd.search.carbs``), which is fastest for matrices this small.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
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


def _prior_arrays(d: int) -> tuple[np.ndarray, np.ndarray]:
    priors = [_LS_PRIOR] * d + [_SIGNAL_PRIOR, _LINEAR_PRIOR, _NOISE_PRIOR]
    return np.array([p[0] for p in priors]), np.array([p[1] for p in priors])


def _neg_log_posterior(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                       center: torch.Tensor) -> tuple[float, np.ndarray]:
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
    ga = g @ a
    grad = torch.empty(d + 3, dtype=torch.float64)
    grad[:d] = 1.5 * signal * 2.0 * ((a * a).T @ g.sum(1) - (a * ga).sum(0))
    grad[d] = 0.5 * signal * (w * matern).sum()
    grad[d + 1] = 0.5 * linear * (w * lin).sum()
    grad[d + 2] = 0.5 * noise * w.diagonal().sum()
    value = 0.5 * float((y[:, None] * alpha).sum()) + float(chol.diagonal().log().sum())
    mean, sd = _prior_arrays(d)
    v = theta.numpy()
    value += 0.5 * float((((v - mean) / sd) ** 2).sum())
    return value, grad.numpy() + (v - mean) / sd**2


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
        """Fit hyperparameters (MAP, L-BFGS-B) to ``(x, y)`` and return the posterior."""
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

        def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
            return _neg_log_posterior(torch.as_tensor(v, dtype=torch.float64), xt, yt, ct)

        bnds = [_LS_BOUNDS] * d + [_SIGNAL_BOUNDS, _LINEAR_BOUNDS, _NOISE_BOUNDS]
        v0 = np.clip(init.as_vector(), [b[0] for b in bnds], [b[1] for b in bnds])
        best = v0
        if max_iter > 0:
            try:
                res = scipy.optimize.minimize(objective, v0, jac=True, method="L-BFGS-B", bounds=bnds,
                                              options={"maxiter": max_iter, "maxfun": max_iter + 10})
                if np.all(np.isfinite(res.x)):
                    best = res.x
            except (RuntimeError, ValueError, np.linalg.LinAlgError):
                # A numerically broken fit keeps the initial hyperparameters: a worse model, not a crash.
                best = v0
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

    def condition(self, x_new: np.ndarray, y_new: np.ndarray) -> GaussianProcess:
        """The posterior with extra points (same hyperparameters and output scaling)."""
        if len(x_new) == 0:
            return self
        x = np.concatenate([self.x, np.asarray(x_new, dtype=np.float64)])
        y = np.concatenate([self.y, np.asarray(y_new, dtype=np.float64)])
        return GaussianProcess(x, y, self.hyper, self.y_mean, self.y_std, self._center.numpy())
