"""Checks of the scalar schedules (gdiff.processes.Schedule) against an independent float64 reference
(docs/method.md#forward-process-and-posterior).

The reference below (``Spec``) recomputes every quantity from the formulas in numpy, without touching
Schedule internals, and in forms that avoid cancellation (1 - abar of the cosine schedule as sin^2, the vp
step from the factored log difference, ...), so it can serve as ground truth at float64 precision.
This file holds the reference, the published reference values, edge cases, gradients, errors and time
sampling; the hypothesis properties and the Monte Carlo checks are in test_diffusion_properties.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from gdiff.processes import Schedule

F64 = torch.float64
COS_OFFSET = 0.008
VP_EPS = 1e-3


# ------------------------------------------------------------------------------- independent reference
@dataclass(frozen=True)
class Spec:
    """A schedule described by its METHOD parameters, with a numpy float64 reference of every formula."""

    kind: str  # vp | geometric | cosine
    T: int
    bmin: float = 0.1
    bmax: float = 20.0

    def build(self, **kwargs) -> Schedule:
        if self.kind == "cosine":
            return Schedule.cosine(num_steps=self.T, **kwargs)
        return getattr(Schedule, self.kind)(num_steps=self.T, beta_min=self.bmin, beta_max=self.bmax, **kwargs)

    def grid(self) -> np.ndarray:
        frac = np.arange(self.T + 1, dtype=np.float64) / self.T
        return frac if self.kind == "cosine" else VP_EPS + (1 - VP_EPS) * frac

    # abar(tau) = exp(log_abar): vp log_abar = -tau (0.5 (bmax - bmin) tau + bmin)
    def _vp_log(self, tau):
        return -tau * (0.5 * (self.bmax - self.bmin) * tau + self.bmin)

    # geometric: 1 - abar = bmin (bmax / bmin)^tau
    def _geo_var(self, tau):
        return self.bmin * (self.bmax / self.bmin) ** tau

    # cosine: abar = cos^2(u), u = (tau + 0.008) / 1.008 * pi / 2 = pi / 2 - w, w = (1 - tau) / 1.008 * pi / 2;
    # abar = sin^2(w) and 1 - abar = sin^2(u) keep full relative precision at both ends
    @staticmethod
    def _u(tau):
        return (tau + COS_OFFSET) / (1 + COS_OFFSET) * (np.pi / 2)

    @staticmethod
    def _w(tau):
        return (1 - tau) / (1 + COS_OFFSET) * (np.pi / 2)

    def abar(self, tau) -> np.ndarray:
        tau = np.asarray(tau, dtype=np.float64)
        if self.kind == "vp":
            return np.exp(self._vp_log(tau))
        if self.kind == "geometric":
            return 1.0 - self._geo_var(tau)
        return np.sin(self._w(tau)) ** 2

    def one_minus_abar(self, tau) -> np.ndarray:
        tau = np.asarray(tau, dtype=np.float64)
        if self.kind == "vp":
            return -np.expm1(self._vp_log(tau))
        if self.kind == "geometric":
            return self._geo_var(tau)
        return np.sin(self._u(tau)) ** 2

    def step(self, s, t) -> tuple[np.ndarray, np.ndarray]:
        """(sqrt(a), beta) of q(x_t | x_s), a = abar_t / abar_s, computed without cancellation."""
        s, t = np.asarray(s, dtype=np.float64), np.asarray(t, dtype=np.float64)
        if self.kind == "vp":
            log_a = -(t - s) * (0.5 * (self.bmax - self.bmin) * (t + s) + self.bmin)
            return np.exp(0.5 * log_a), -np.expm1(log_a)
        if self.kind == "geometric":
            v_s = self._geo_var(s)
            beta = v_s * np.expm1((t - s) * math.log(self.bmax / self.bmin)) / (1 - v_s)
            return np.sqrt((1 - self._geo_var(t)) / (1 - v_s)), beta
        # cos(u_s + d) / cos(u_s) = cos d - tan(u_s) sin d, so 1 - ratio = 2 sin^2(d/2) + sin d / tan(w_s)
        d = (t - s) / (1 + COS_OFFSET) * (np.pi / 2)
        one_minus_ratio = 2 * np.sin(d / 2) ** 2 + np.sin(d) / np.tan(self._w(s))
        ratio = np.sin(self._w(t)) / np.sin(self._w(s))
        return ratio, one_minus_ratio * (1 + ratio)

    def posterior(self, s, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(c0, ct, var) of q(x_s | x_t, x_0) as the normalised product N(x_t; sqrt(a) x_s, beta) N(x_s;
        sqrt(abar_s) x_0, 1 - abar_s), completing the square in x_s: precision = 1/(1-abar_s) + a/beta,
        here multiplied through by beta (1 - abar_s) so that 1 - abar_s = 0 (vp at tau = 0) stays finite."""
        om_s, abar_s = self.one_minus_abar(s), self.abar(s)
        sqrt_a, beta = self.step(s, t)
        norm = beta + sqrt_a**2 * om_s
        return np.sqrt(abar_s) * beta / norm, sqrt_a * om_s / norm, om_s * beta / norm


def col(values, x: torch.Tensor) -> torch.Tensor:
    """Per-sample numpy values [B] -> float64 tensor [B, 1, ..., 1] broadcasting against x."""
    return torch.as_tensor(np.asarray(values, dtype=np.float64)).reshape(-1, *([1] * (x.ndim - 1)))


def tt(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


SPECS = [Spec("vp", 4), Spec("vp", 2, 0.0, 5.0), Spec("geometric", 4, 0.02, 0.95), Spec("cosine", 4),
         Spec("cosine", 1), Spec("vp", 8, 1.0, 30.0)]


def test_reference_matches_direct_formulas():
    """Sanity of the reference itself: the cancellation-free forms equal the naive METHOD formulas."""
    tau = np.linspace(0.05, 0.95, 7)
    for spec in SPECS:
        np.testing.assert_allclose(spec.one_minus_abar(tau), 1 - spec.abar(tau), rtol=1e-9)
        sqrt_a, beta = spec.step(tau[:-1], tau[1:])
        a = spec.abar(tau[1:]) / spec.abar(tau[:-1])
        np.testing.assert_allclose(sqrt_a, np.sqrt(a), rtol=1e-12)
        np.testing.assert_allclose(beta, 1 - a, rtol=1e-9)
        c0, ct, var = spec.posterior(tau[:-1], tau[1:])
        om_t = 1 - spec.abar(tau[1:])
        np.testing.assert_allclose(c0, np.sqrt(spec.abar(tau[:-1])) * (1 - a) / om_t, rtol=1e-9)
        np.testing.assert_allclose(ct, np.sqrt(a) * (1 - spec.abar(tau[:-1])) / om_t, rtol=1e-9)
        np.testing.assert_allclose(var, (1 - a) * (1 - spec.abar(tau[:-1])) / om_t, rtol=1e-9)
        np.testing.assert_allclose(1 / var, 1 / (1 - spec.abar(tau[:-1])) + a / (1 - a), rtol=1e-9)  # precision
    cos = Spec("cosine", 4)
    np.testing.assert_allclose(cos.abar(tau), np.cos((tau + 0.008) / 1.008 * np.pi / 2) ** 2, rtol=1e-12)


# ------------------------------------------------------------------------------------ reference values
@pytest.mark.parametrize(("T", "betas", "decimals"), [
    (4, [0.4783, 0.8492, 0.9564, 0.9874], [4, 4, 4, 4]),
    (2, [0.9213, 0.99945], [4, 5]),
])
def test_vp_reference_betas(T, betas, decimals):
    got = Schedule.vp(num_steps=T, beta_min=0.1, beta_max=20.0).betas
    assert got.dtype == F64 and got.shape == (T,)
    for g, want, dec in zip(got.tolist(), betas, decimals, strict=True):
        assert abs(g - want) <= 0.5 * 10.0**-dec, (got, betas)


def test_vp_reference_sqrt_alpha_bar_on_grid():
    sched = Schedule.vp(num_steps=4)
    assert abs(sched.times[0].item() - 1e-3) < 1e-15 and sched.times[-1].item() == 1.0
    got = sched.alpha_bar(sched.times).sqrt().tolist()
    assert abs(got[0] - 0.99995) < 1e-5  # tau_0 = 1e-3, not 0: sqrt(abar) = 1 to 4 decimals, not exactly
    for g, want, tol in zip(got[1:], [0.7223, 0.2805, 0.0586, 0.00657], [5e-5, 5e-5, 5e-5, 5e-6], strict=True):
        assert abs(g - want) <= tol, got


@pytest.mark.parametrize(("T", "betas"), [(4, [0.153, 0.417, 0.708, 1.0]), (2, [0.506, 1.0])])
def test_cosine_reference_betas(T, betas):
    sched = Schedule.cosine(num_steps=T)
    np.testing.assert_allclose(sched.times.numpy(), np.arange(T + 1) / T, rtol=0, atol=1e-15)
    np.testing.assert_allclose(sched.betas.numpy(), betas, rtol=0, atol=5e-4)


# ------------------------------------------------------------------------------------------ edge cases
EDGE_FNS = ("q_sample", "q_step", "posterior", "posterior_sample")


def _run_all(sched: Schedule, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
    noise = torch.randn_like(x)
    mean, var = sched.posterior(x, 0.5 * x, s, t)
    return {"q_sample": sched.q_sample(x, t, noise), "q_step": sched.q_step(x, s, t, noise),
            "posterior_mean": mean, "posterior_var": var,
            "posterior_sample": sched.posterior_sample(x, 0.5 * x, s, t, noise),
            "q_sample_s": sched.q_sample(x, s, noise)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T", [1, 2, 4, 16])
def test_top_cosine_step_is_finite(dtype, T):
    sched = Schedule.cosine(num_steps=T)
    assert sched.betas[-1].item() == pytest.approx(1.0, abs=1e-12)
    x = torch.randn(3, 2, 4, 4, dtype=dtype)
    s = torch.full((3,), sched.times[T - 1].item(), dtype=dtype)
    t = torch.ones(3, dtype=dtype)
    out = _run_all(sched, x, s, t)
    for name, value in out.items():
        assert value.dtype == dtype and torch.isfinite(value).all(), name
    # beta = 1: the posterior is q(x_s | x_0) itself (x_t carries no information about x_s)
    _, ct, var = Spec("cosine", T).posterior(sched.times[T - 1].item(), 1.0)
    assert abs(ct) < 1e-15
    assert out["posterior_var"].flatten()[0].item() == pytest.approx(float(var), rel=1e-6)


CLEAN_CASES = [(spec, s_kind, t) for spec in (Spec("vp", 4), Spec("vp", 4, 0.0, 20.0), Spec("cosine", 4),
                                                Spec("geometric", 4, 0.01, 0.9))
               for s_kind in ("zero", "grid0") for t in (1e-12, 1e-6, 1e-3, 0.3)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("spec", "s_kind", "t"), CLEAN_CASES)
def test_clean_level_is_finite(dtype, spec, s_kind, t):
    s_val = 0.0 if s_kind == "zero" else spec.grid()[0]
    if t <= s_val:
        t = s_val + t
    sched = spec.build()
    x = torch.randn(5, 3, dtype=dtype)
    out = _run_all(sched, x, torch.full((5,), s_val, dtype=F64), torch.full((5,), t, dtype=F64))
    for name, value in out.items():
        assert value.dtype == dtype and torch.isfinite(value).all(), name
    assert (out["posterior_var"] >= 0).all()


def test_vp_at_tau_zero_posterior_mean_is_x0_exactly():
    sched = Schedule.vp(num_steps=4)
    x0, xt = torch.randn(6, 3, dtype=F64), torch.randn(6, 3, dtype=F64)
    t = tt([1e-9, 1e-6, 1e-3, 0.1, 0.5, 1.0])
    mean, var = sched.posterior(x0, xt, torch.zeros(6, dtype=F64), t)
    torch.testing.assert_close(mean, x0, rtol=1e-12, atol=1e-14)
    assert (var.abs() <= 1e-300).all()


@pytest.mark.parametrize("spec", [Spec("vp", 4), Spec("vp", 16), Spec("cosine", 4), Spec("cosine", 16),
                                  Spec("geometric", 2, 1e-4, 0.9)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_clean_level_posterior_mean_is_about_x0(spec, dtype):
    """From s = times[0] to t = times[1] the posterior mean is x0 up to ct x_t + (1 - c0) x0, and both
    coefficients are small because 1 - abar_s << beta (the reference says by how much)."""
    grid = spec.grid()
    c0, ct, var = spec.posterior(grid[0], grid[1])
    assert ct < 0.05 and 1 - c0 < 0.05 and var < 0.05 * spec.one_minus_abar(grid[1])
    x0, xt = 3 * torch.randn(8, 2, 2, dtype=dtype), 3 * torch.randn(8, 2, 2, dtype=dtype)
    mean, post_var = spec.build().posterior(x0, xt, grid[0], grid[1])
    bound = (abs(1 - c0) * x0.abs() + abs(ct) * xt.abs()) * 1.001 + 1e-6
    assert ((mean - x0).abs() <= bound).all()
    assert (post_var <= 1.001 * var + 1e-12).all()


@pytest.mark.xfail(strict=True, reason="known: vp with 1 - abar_t rounding to 0 (t ~ 1e-323) gives 0/0 = NaN")
def test_vp_tau_zero_with_underflowing_t_is_finite():
    sched = Schedule.vp(num_steps=4)
    x = torch.randn(2, 3, dtype=F64)
    mean, var = sched.posterior(x, x, torch.zeros(2, dtype=F64), torch.full((2,), 1e-323, dtype=F64))
    assert torch.isfinite(mean).all() and torch.isfinite(var).all()


# -------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("spec", SPECS)
def test_posterior_sample_gradients_are_c0_and_ct(spec):
    gen = np.random.default_rng(0)
    grid = spec.grid()
    s = np.array([0.0, grid[0], grid[spec.T - 1], 0.3 * grid[-1]])
    t = np.array([grid[1], 1.0, 1.0, 0.7])
    x0 = torch.randn(4, 2, 3, 3, dtype=F64, requires_grad=True)
    xt = torch.randn(4, 2, 3, 3, dtype=F64, requires_grad=True)
    out = spec.build().posterior_sample(x0, xt, tt(s), tt(t), noise=torch.randn(4, 2, 3, 3, dtype=F64))
    cot = torch.as_tensor(gen.normal(size=out.shape))
    g0, gt = torch.autograd.grad(out, (x0, xt), cot)
    c0, ct, _ = spec.posterior(s, t)
    torch.testing.assert_close(g0, col(c0, cot) * cot, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gt, col(ct, cot) * cot, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------------------------- errors
def test_bad_order_raises():
    sched = Schedule.vp(num_steps=4)
    x = torch.randn(3, 2, dtype=F64)
    s, t = tt([0.1, 0.7, 0.2]), tt([0.2, 0.5, 0.9])
    for call in (lambda: sched.q_step(x, s, t), lambda: sched.posterior(x, x, s, t),
                 lambda: sched.posterior_sample(x, x, s, t)):
        with pytest.raises(ValueError, match=r"s_time < t.*s_time=0\.7 >= t=0\.5 at index 1"):
            call()
    with pytest.raises(ValueError, match=r"s_time < t.*s_time=0\.4 >= t=0\.4 at index 2"):
        sched.posterior(x, x, tt([0.1, 0.2, 0.4]), tt([0.3, 0.3, 0.4]))


def test_python_float_times_keep_float64_precision():
    """Scalar times are broadcast; a Python float is a double, so with float64 x the result must be
    float64-exact, as with a float64 tensor of times (not rounded through torch's default float32)."""
    spec = Spec("vp", 4)
    sched = spec.build()
    x0, zero = torch.ones(1, 1, dtype=F64), torch.zeros(1, 1, dtype=F64)
    s, t = 1e-3, 0.3
    c0, ct, var = spec.posterior(s, t)
    torch.testing.assert_close(sched.q_sample(x0, t, noise=zero), col(np.sqrt(spec.abar(t)), x0),
                               rtol=1e-12, atol=0)
    mean, post_var = sched.posterior(x0, zero, s, t)
    torch.testing.assert_close(mean, col(c0, x0), rtol=1e-12, atol=0)
    torch.testing.assert_close(post_var, col(var, x0), rtol=1e-12, atol=0)


@pytest.mark.parametrize("bad", [1.5, -0.25, float("nan")])
def test_times_outside_unit_interval_raise(bad):
    sched = Schedule.cosine(num_steps=4)
    x = torch.randn(2, 3, dtype=F64)
    pattern = r"\[0, 1\].*" + ("nan" if math.isnan(bad) else re_float(bad))
    calls = [lambda: sched.alpha_bar(tt([0.5, bad])), lambda: sched.q_sample(x, tt([0.5, bad])),
             lambda: sched.q_step(x, tt([0.1, 0.0]), tt([0.5, bad])),
             lambda: sched.posterior(x, x, tt([bad, 0.1]), tt([0.5, 1.0])),
             lambda: sched.posterior_sample(x, x, tt([0.1, 0.1]), tt([bad, 0.5]))]
    for call in calls:
        with pytest.raises(ValueError, match=pattern):
            call()


def re_float(value) -> str:
    return re.escape(str(value))


@pytest.mark.parametrize("builder", ["vp", "geometric", "cosine"])
@pytest.mark.parametrize("bad", [0, -3, 2.5, 4.0, "4", True])
def test_bad_num_steps_raise(builder, bad):
    with pytest.raises(ValueError, match=rf"num_steps.*{re.escape(repr(bad))}"):
        getattr(Schedule, builder)(num_steps=bad)


@pytest.mark.parametrize(("bmin", "bmax"), [(0.1, 20.0), (0.0, 0.5), (0.5, 0.5), (0.6, 0.2), (0.2, 1.0),
                                            (-0.1, 0.5)])
def test_invalid_geometric_schedule_raises(bmin, bmax):
    with pytest.raises(ValueError, match=rf"geometric.*\[0, 1\).*beta_min={re_float(bmin)}, "
                                         rf"beta_max={re_float(bmax)}"):
        Schedule.geometric(num_steps=4, beta_min=bmin, beta_max=bmax)


def test_invalid_vp_schedule_raises():
    with pytest.raises(ValueError, match=r"beta_min=-1\.0, beta_max=20\.0"):
        Schedule.vp(num_steps=4, beta_min=-1.0)
    with pytest.raises(ValueError, match=r"beta_min=5\.0, beta_max=1\.0"):
        Schedule.vp(num_steps=4, beta_min=5.0, beta_max=1.0)


def test_mismatched_shapes_raise():
    sched = Schedule.vp(num_steps=4)
    x = torch.randn(4, 3, dtype=F64)
    t3, s3 = torch.full((3,), 0.5, dtype=F64), torch.full((3,), 0.1, dtype=F64)
    s4, t4 = torch.full((4,), 0.1, dtype=F64), torch.full((4,), 0.5, dtype=F64)
    with pytest.raises(ValueError, match=r"t must .*shape \[4\].*got shape \(3,\)"):
        sched.q_sample(x, t3)
    with pytest.raises(ValueError, match=r"s_time must .*shape \[4\].*got shape \(3,\)"):
        sched.q_step(x, s3, t4)
    with pytest.raises(ValueError, match=r"shape \[4\].*got shape \(4, 1\)"):
        sched.q_sample(x, t4[:, None])
    with pytest.raises(ValueError, match=r"shape \[4\].*\(3,\)"):
        sched.posterior(x, x, s4, t3)
    with pytest.raises(ValueError, match=r"mismatched batch sizes.*'x0': 4.*'x_t': 3"):
        sched.posterior(x, x[:3], 0.1, 0.5)
    with pytest.raises(ValueError, match=r"mismatched batch sizes.*'x0': 4.*'x_t': 3"):
        sched.posterior_sample(x, x[:3], 0.1, 0.5)
    with pytest.raises(ValueError, match=r"same shape.*\(4, 3\).*\(4, 2\)"):
        sched.posterior(x, x[:, :2], 0.1, 0.5)


@pytest.mark.parametrize("bad_shape", [(4, 2), (3, 4), (4, 3, 1), (12,), (1, 3)])
def test_wrong_noise_shape_raises(bad_shape):
    sched = Schedule.cosine(num_steps=4)
    x = torch.randn(4, 3, dtype=F64)
    bad = torch.randn(*bad_shape, dtype=F64)
    s, t = torch.full((4,), 0.1, dtype=F64), torch.full((4,), 0.5, dtype=F64)
    pattern = r"noise.*\(4, 3\).*" + re.escape(str(tuple(bad_shape)))
    for call in (lambda: sched.q_sample(x, t, bad), lambda: sched.q_step(x, s, t, bad),
                 lambda: sched.posterior_sample(x, x, s, t, bad)):
        with pytest.raises(ValueError, match=pattern):
            call()


# ------------------------------------------------------------------------------------- time sampling
@pytest.mark.parametrize("spec", [Spec("vp", 4), Spec("geometric", 3, 0.05, 0.9), Spec("cosine", 8)])
def test_sample_times_grid_mode(spec):
    sched = spec.build(time_sampling="grid")
    s, t = sched.sample_times(4000, generator=torch.Generator().manual_seed(0))
    assert s.dtype == F64 and t.dtype == F64 and s.shape == t.shape == (4000,)
    grid = spec.grid()
    idx = np.abs(t.numpy()[:, None] - grid[None, :]).argmin(axis=1)
    assert (idx >= 1).all()
    np.testing.assert_allclose(t.numpy(), grid[idx], rtol=0, atol=1e-15)
    np.testing.assert_allclose(s.numpy(), grid[idx - 1], rtol=0, atol=1e-15)
    counts = np.bincount(idx, minlength=spec.T + 1)[1:]
    # uniform over the T steps: each count within 6 binomial standard deviations
    p = 1 / spec.T
    assert (np.abs(counts - 4000 * p) <= 6 * math.sqrt(4000 * p * (1 - p))).all(), counts


@pytest.mark.parametrize(("T", "t_min"), [(1, 1e-4), (2, 1e-4), (4, 1e-4), (4, 0.3)])
def test_sample_times_continuous_mode(T, t_min):
    sched = Schedule.cosine(num_steps=T, t_min=t_min)
    n = 20000
    s, t = sched.sample_times(n, device="cpu", generator=torch.Generator().manual_seed(1))
    assert s.dtype == F64 and t.dtype == F64 and s.device.type == "cpu"
    t_np, s_np = t.numpy(), s.numpy()
    assert (t_np > t_min).all() and (t_np <= 1.0).all()
    np.testing.assert_allclose(s_np, np.maximum(t_np - 1.0 / T, 0.0), rtol=0, atol=1e-15)
    assert (s_np < t_np).all()
    # uniform on (t_min, 1]: mean and variance within 6 standard errors
    width = 1 - t_min
    assert abs(t_np.mean() - (1 + t_min) / 2) <= 6 * width / math.sqrt(12 * n)
    assert abs(t_np.var() - width**2 / 12) <= 6 * width**2 * math.sqrt(1 / 180 / n)  # var of U^2 est.
    # reproducible with the same generator, different with another
    s2, t2 = sched.sample_times(n, generator=torch.Generator().manual_seed(1))
    assert torch.equal(t, t2) and torch.equal(s, s2)


def test_vp_default_time_sampling_is_grid_and_cosine_is_continuous():
    assert Schedule.vp(num_steps=4).time_sampling == "grid"
    assert Schedule.cosine(num_steps=4).time_sampling == "continuous"
    with pytest.raises(ValueError, match=r"time_sampling.*'bogus'"):
        Schedule.vp(num_steps=4, time_sampling="bogus")


def test_sampling_times():
    cos = Schedule.cosine(num_steps=4)
    assert torch.equal(cos.sampling_times(), cos.times) and torch.equal(cos.sampling_times(4), cos.times)
    np.testing.assert_allclose(cos.sampling_times(8).numpy(), np.arange(9) / 8, rtol=0, atol=1e-15)
    np.testing.assert_allclose(cos.sampling_times(1).numpy(), [0.0, 1.0], rtol=0, atol=0)
    vp = Schedule.vp(num_steps=4)
    np.testing.assert_allclose(vp.sampling_times().numpy(), Spec("vp", 4).grid(), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"grid of 4 steps.*8 steps"):
        vp.sampling_times(8)
    with pytest.raises(ValueError, match=r"num_steps.*0"):
        cos.sampling_times(0)
    cont_vp = Schedule.vp(num_steps=4, time_sampling="continuous")
    np.testing.assert_allclose(cont_vp.sampling_times(2).numpy(), [1e-3, 0.5005, 1.0], rtol=0, atol=1e-15)


def test_from_config():
    sched = Schedule.from_config({"schedule": "vp", "num_steps": 2})
    np.testing.assert_allclose(sched.betas.numpy(), [0.9213, 0.99945], atol=5e-5)
    assert Schedule.from_config({"schedule": "cosine", "num_steps": 3}).num_steps == 3
    with pytest.raises(ValueError, match=r"schedule must be one of.*'linear'"):
        Schedule.from_config({"schedule": "linear", "num_steps": 2})
    with pytest.raises(ValueError, match=r"diffusion.betamax \(did you mean .beta_max.\?\)"):
        Schedule.from_config({"schedule": "vp", "num_steps": 2, "betamax": 3})
    with pytest.raises(ValueError, match=r"geometric.*beta_max=20"):
        Schedule.from_config({"schedule": "geometric", "num_steps": 2, "beta_min": 0.1, "beta_max": 20})


# ------------------------------------------------------------------ the unchecked path (validate=False)
def _calls(sched: Schedule, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> dict:
    mean, var = sched.posterior(x, 0.5 * x, s, t)
    return {"log_alpha_bar": sched.log_alpha_bar(t), "alpha_bar": sched.alpha_bar(s),
            "q_sample": sched.q_sample(x, t, noise), "q_step": sched.q_step(x, s, t, noise),
            "step_coefficients": torch.stack(sched.step_coefficients(s, t)),
            "posterior_coefficients": torch.stack(sched.posterior_coefficients(s, t)),
            "posterior_mean": mean, "posterior_var": var,
            "posterior_sample": sched.posterior_sample(x, 0.5 * x, s, t, noise),
            "times": torch.stack(sched.sample_times(64, generator=torch.Generator().manual_seed(5)))}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.kind}{s.T}")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_unchecked_schedule_is_bit_identical_on_valid_times(spec, dtype):
    sched = spec.build()
    fast = sched.unchecked()
    assert sched.validate and not fast.validate and fast.unchecked() is fast and sched.unchecked() is fast
    assert fast.name == sched.name and fast.num_steps == sched.num_steps and fast.times is sched.times
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 2, generator=gen, dtype=dtype)
    s, t = sched.sample_times(64, generator=gen)
    s[:3], t[:3] = 0.0, tt([1e-300, 0.5, 1.0])  # the clean level and the top end are valid too
    noise = torch.randn(x.shape, generator=gen, dtype=dtype)
    slow, quick = _calls(sched, x, s, t, noise), _calls(fast, x, s, t, noise)
    for key, value in slow.items():
        torch.testing.assert_close(quick[key], value, rtol=0, atol=0, equal_nan=True, msg=key)  # bit-identical


def test_invalid_times_still_raise_on_the_default_path():
    sched = Schedule.vp(num_steps=4)
    fast = sched.unchecked()
    x = torch.randn(2, 3, dtype=F64)
    assert torch.isnan(fast.q_sample(x, tt([0.5, float("nan")]))).any()  # no check: garbage in, garbage out
    fast.q_step(x, tt([0.7, 0.1]), tt([0.5, 0.2]))  # s >= t is not caught either
    for bad in (lambda sc: sc.q_sample(x, tt([0.5, 1.5])), lambda sc: sc.q_step(x, tt([0.7, 0.1]), tt([0.5, 0.2])),
                lambda sc: sc.posterior(x, x, tt([0.1, -0.1]), tt([0.5, 0.2])),
                lambda sc: sc.posterior_sample(x, x, tt([0.1, 0.1]), tt([0.5, float("nan")])),
                lambda sc: sc.alpha_bar(tt([2.0]))):
        with pytest.raises(ValueError, match=r"\[0, 1\]|s_time < t"):
            bad(sched)  # building the unchecked twin leaves the schedule itself checking
    with pytest.raises(ValueError, match=r"shape \[2\]"):  # shape checks read no tensor: they stay
        fast.q_sample(x, tt([0.5, 0.5, 0.5]))


@pytest.mark.parametrize("spec", [Spec("vp", 4), Spec("cosine", 2)], ids=lambda s: s.kind)
def test_unchecked_schedule_reads_no_tensor_on_the_host(spec):
    """Tensors on the meta device have no values: any host read (``.item()``, ``bool(tensor)``, a copy to the
    CPU) raises. The unchecked path runs through on them, so it never synchronises with a GPU."""
    sched = spec.build()
    x = torch.empty(5, 3, device="meta")
    s, t = sched.unchecked().sample_times(5, device="meta")
    assert s.device.type == t.device.type == "meta"
    with pytest.raises(RuntimeError, match="meta"):
        sched.q_sample(x, t)
    _calls(sched.unchecked(), x, s, t, torch.empty_like(x))


def test_training_step_and_sampler_read_no_tensor_on_the_host():
    """The objectives' D and G steps and both samplers run on the meta device (see above): they use the
    unchecked schedule, and nothing else in them reads a value back."""
    from gdiff import objectives
    from gdiff.nets.toy import ToyDiscriminator, ToyGenerator
    from gdiff.sampling import ddim, sample

    G = ToyGenerator((2,), width=8, depth=1, time_dim=4).to("meta")
    D = ToyDiscriminator((2,), width=8, depth=1, time_dim=4, pairwise=True, heads=()).to("meta")
    x = torch.empty(8, 2, device="meta")
    for sched in (Schedule.vp(2), Schedule.cosine(2)):
        assert sample(G, sched, x).device.type == "meta" and ddim(G, sched, x, eta=1.0).device.type == "meta"
        for fraction in (1.0, 0.5):
            objective = objectives.ddgan(r1_gamma=0.1, lazy_reg=1, r1_batch_fraction=fraction)
            losses = objective.discriminator_loss(G, D, sched, x, step=0)
            assert "d/r1" in losses.parts
            losses.total.backward()
            objective.generator_loss(G, D, sched, x).total.backward()
