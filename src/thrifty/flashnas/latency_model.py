"""Latency models: a linear model on physical features plus a GP on its residuals.

Prefill (compute-bound) and decode (memory-bound) get separate models. The linear part has
non-negative costs per feature (ms per GMAC, ms per layer, ...) fitted by NNLS; the GP
(scikit-learn, RBF-ARD + white noise) models the remaining log-ratio ``log(ms / linear)`` on
standardised features. ``residual="none"`` keeps only the linear model.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np

from thrifty.flashnas.config import FlashLMConfig
from thrifty.flashnas.latency import FEATURE_NAMES, Mode, arch_features

Residual = Literal["gp", "none"]


class LatencyModel:
    """Predict the latency (ms) of an architecture for one ``mode`` at one ``seq_len``.

    Args:
        mode: ``"prefill"`` (``seq_len`` tokens) or ``"decode"`` (one token, ``seq_len`` KV cache).
        seq_len: prefill length or decode KV length the model is fitted for.
        residual: ``"gp"`` (linear + GP on the log-ratio residual) or ``"none"`` (linear only).
        seed: random state of the GP optimiser (the fit is deterministic for a given seed).
    """

    def __init__(self, mode: Mode, seq_len: int, *, residual: Residual = "gp", seed: int = 0) -> None:
        if residual not in ("gp", "none"):
            raise ValueError(f"residual: expected 'gp' or 'none', got {residual!r}")
        self.mode, self.seq_len, self.residual, self.seed = mode, seq_len, residual, seed
        self.coef: np.ndarray | None = None
        self._gp = None
        self._mu = self._sd = None

    def features(self, archs: Sequence[FlashLMConfig]) -> np.ndarray:
        """``(N, F + 1)`` design matrix: :data:`FEATURE_NAMES` and a constant."""
        rows = [arch_features(a, self.mode, self.seq_len) for a in archs]
        return np.column_stack([np.array(rows), np.ones(len(rows))])

    def fit(self, archs: Sequence[FlashLMConfig], ms: Sequence[float] | np.ndarray) -> LatencyModel:
        """Fit on measured latencies ``ms`` (N,) of ``archs``; returns ``self``."""
        from scipy.optimize import nnls

        y = np.asarray(ms, dtype=np.float64)
        if len(archs) != len(y) or len(y) < 2:
            raise ValueError(f"ms: expected one latency per architecture (>= 2), got {len(y)} for {len(archs)}")
        if (y <= 0).any():
            raise ValueError("ms: expected positive latencies")
        x = self.features(archs)
        self.coef, _ = nnls(x, y)
        if self.residual == "gp":
            self._fit_gp(x, np.log(y / np.maximum(x @ self.coef, 1e-9)))
        return self

    def _fit_gp(self, x: np.ndarray, r: np.ndarray) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        z = x[:, :-1]
        self._mu, self._sd = z.mean(0), z.std(0) + 1e-12
        kernel = ConstantKernel(0.01, (1e-6, 1.0)) * RBF(np.ones(z.shape[1]), (1e-2, 1e3)) + WhiteKernel(
            1e-3, (1e-8, 1e-1)
        )
        self._gp = GaussianProcessRegressor(kernel, normalize_y=False, random_state=self.seed, n_restarts_optimizer=0)
        with warnings.catch_warnings():  # length scales hitting a bound are expected on tiny datasets
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._gp.fit((z - self._mu) / self._sd, r)

    def predict(self, archs: Sequence[FlashLMConfig]) -> tuple[np.ndarray, np.ndarray]:
        """``(mean_ms, std_ms)``, each ``(N,)``; the std is 0 without the GP residual."""
        if self.coef is None:
            raise RuntimeError("LatencyModel.predict: call fit() first")
        x = self.features(archs)
        linear = np.maximum(x @ self.coef, 1e-9)
        if self._gp is None:
            return linear, np.zeros_like(linear)
        mean_r, std_r = self._gp.predict((x[:, :-1] - self._mu) / self._sd, return_std=True)
        mean = linear * np.exp(mean_r)
        return mean, mean * std_r

    def costs(self) -> dict[str, float]:
        """The fitted linear costs: ms per unit of each feature (GMAC, layer) and the constant."""
        if self.coef is None:
            raise RuntimeError("LatencyModel.costs: call fit() first")
        return dict(zip((*FEATURE_NAMES, "const_ms"), (float(c) for c in self.coef), strict=True))

    def loo_predictions(self, archs: Sequence[FlashLMConfig], ms: Sequence[float] | np.ndarray) -> np.ndarray:
        """Leave-one-out predictions ``(N,)``: each point predicted by a model fitted on the others."""
        y = np.asarray(ms, dtype=np.float64)
        out = np.empty_like(y)
        for i in range(len(y)):
            keep = [j for j in range(len(y)) if j != i]
            model = LatencyModel(self.mode, self.seq_len, residual=self.residual, seed=self.seed)
            model.fit([archs[j] for j in keep], y[keep])
            out[i] = model.predict([archs[i]])[0][0]
        return out

    def loo_r2(self, archs: Sequence[FlashLMConfig], ms: Sequence[float] | np.ndarray, *, log: bool = False) -> float:
        """Leave-one-out R^2 (on ms, or on log-ms with ``log=True``)."""
        y = np.asarray(ms, dtype=np.float64)
        pred = self.loo_predictions(archs, y)
        return r2_score(np.log(y), np.log(pred)) if log else r2_score(y, pred)


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``."""
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / max(ss_tot, 1e-300)


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a), np.asarray(b)).statistic)
