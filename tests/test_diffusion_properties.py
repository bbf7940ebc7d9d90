"""Hypothesis properties of the scalar schedules in float64, against the independent reference in test_diffusion.

Random schedules (vp with random beta_min/beta_max, valid geometric, cosine), random T, random per-sample
time pairs s < t (grid steps, s = 0, s = times[0], t = 1, anywhere) and random shapes ([B], [B, D],
[B, C, H, W]). Monte Carlo checks use n = 200k draws with tolerances of 6 standard errors, and negative
controls show that a 10 % error in a variance (10-20 % in a coefficient) is caught. Tolerances of the
exact checks are float64 rounding propagated through each formula (``step_rtol``, ``sqrt_abar_floor``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdiff.processes import Schedule

from .test_diffusion import F64, Spec, col, tt

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MIN_GAP = 1e-6  # closer pairs: test_posterior_accuracy_near_the_clean_level, test_clean_level_is_finite


# ---------------------------------------------------------------------------------------- strategies
@st.composite
def specs(draw) -> Spec:
    kind = draw(st.sampled_from(["vp", "geometric", "cosine"]))
    T = draw(st.integers(1, 12))
    if kind == "vp":
        bmin = draw(st.sampled_from([0.0, 0.1]) | st.floats(0.0, 5.0))  # 0 makes 1 - abar ~ tau^2 near 0
        return Spec(kind, T, bmin, bmin + draw(st.floats(0.01, 40.0)))
    if kind == "geometric":
        bmin = draw(st.floats(1e-4, 0.95))
        return Spec(kind, T, bmin, bmin + (0.999 - bmin) * draw(st.floats(0.02, 1.0)))
    return Spec(kind, T)


@st.composite
def time_pair(draw, grid: np.ndarray) -> tuple[float, float]:
    mode = draw(st.sampled_from(["grid", "zero", "clean", "top", "anywhere"]))
    if mode == "grid":
        i = draw(st.integers(1, len(grid) - 1))
        return float(grid[i - 1]), float(grid[i])
    gap = 10.0 ** draw(st.floats(math.log10(MIN_GAP), 0.0))  # log-uniform: small steps are the hard ones
    if mode == "zero":
        return 0.0, gap
    if mode == "clean":
        return float(grid[0]), min(float(grid[0]) + gap, 1.0)
    if mode == "top":
        return draw(st.floats(0.0, 1.0 - MIN_GAP)), 1.0
    s = draw(st.floats(0.0, 1.0 - MIN_GAP))
    return s, draw(st.floats(s + MIN_GAP, 1.0))


@st.composite
def cases(draw):
    """(spec, s [B], t [B], x0, x_t) with per-sample times and a random trailing shape."""
    spec = draw(specs())
    pairs = draw(st.lists(time_pair(spec.grid()), min_size=1, max_size=4))
    s, t = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    tail = draw(st.sampled_from([(), (3,), (1, 2, 2), (3, 2, 2)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.floats(0.1, 10.0))
    x0 = torch.as_tensor(scale * rng.normal(size=(len(pairs), *tail)))
    xt = torch.as_tensor(scale * rng.normal(size=(len(pairs), *tail)))
    return spec, s, t, x0, xt


def coefficients(sched: Schedule, s: np.ndarray, t: np.ndarray):
    """Read the library's linear maps off its public API with unit inputs, as numpy [B]."""
    one, zero = torch.ones(len(s), 1, dtype=F64), torch.zeros(len(s), 1, dtype=F64)
    S, T = tt(s), tt(t)
    c0, var = sched.posterior(one, zero, S, T)
    ct, _ = sched.posterior(zero, one, S, T)
    out = {"c0": c0, "ct": ct, "var": var,
           "sqrt_abar_s": sched.q_sample(one, S, noise=zero), "sd_s": sched.q_sample(zero, S, noise=one),
           "sqrt_abar_t": sched.q_sample(one, T, noise=zero), "sd_t": sched.q_sample(zero, T, noise=one),
           "sqrt_a": sched.q_step(one, S, T, noise=zero), "sqrt_beta": sched.q_step(zero, S, T, noise=one)}
    return {k: v.flatten().numpy() for k, v in out.items()}


def close(got, want, scale, rtol=1e-10, atol=0.0):
    got, want, scale, rtol, atol = (np.asarray(a) for a in (got, want, scale, rtol, atol))
    assert np.all(np.abs(got - want) <= rtol * np.abs(scale) + atol + 1e-300), (got, want, rtol, atol)


def sqrt_abar_floor(spec: Spec, tau: np.ndarray) -> np.ndarray:
    """Absolute error float64 allows in sqrt(abar(tau)) / sqrt(abar(s)) ratios: sqrt(abar) itself is only
    representable to ~1e-15 absolute (cos(u) near u = pi/2 on the cosine schedule: the exact abar(1) is 0,
    a float64 evaluation gives ~4e-33), so sqrt(a) = sqrt(abar_t / abar_s) is good to ~1e-15 / sqrt(abar_s)."""
    return 1e-15 / np.sqrt(np.maximum(spec.abar(tau), 1e-300))


def step_rtol(spec: Spec, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Relative accuracy float64 allows for beta = 1 - a, a = abar_t / abar_s [B], when s and t are close.

    An error e in log abar_t - log abar_s moves beta by a e, i.e. relatively by e a / beta (~e / beta for a
    small step). Each log abar is good to ~eps |log abar| (vp: a polynomial), plus eps (1 - abar) / abar on
    the geometric schedule (defined through 1 - abar) and ~1e-15 / sqrt(abar) on the cosine one (cos(u) is
    good to ~1e-15 absolute, see sqrt_abar_floor): up to ~1e-8 at t - s = 1e-6 in the worst corners, but
    ~1e-10 for vp near the clean level, where 1 - exp(.) instead of expm1 would already show.
    """
    abar_s, abar_t = np.maximum(spec.abar(s), 1e-300), np.maximum(spec.abar(t), 1e-300)
    sqrt_a, beta = spec.step(s, t)
    err = np.abs(np.log(abar_s)) + np.abs(np.log(abar_t))
    if spec.kind == "geometric":
        err = err + (1 - abar_s) / abar_s + (1 - abar_t) / abar_t
    if spec.kind == "cosine":
        err = err + 5 / np.sqrt(abar_s) + 5 / np.sqrt(abar_t)
    return 1e-10 + 4e-16 * np.minimum(err, 1e300) * sqrt_a**2 / beta


# ------------------------------------------------------------------------------------ Bayes' rule
@PROPS
@given(cases())
def test_posterior_is_normalised_product_of_gaussians(case):
    spec, s, t, x0, xt = case
    mean, var = spec.build().posterior(x0, xt, tt(s), tt(t))
    assert mean.dtype == var.dtype == F64 and mean.shape == x0.shape and var.shape == (len(s),) + (1,) * (
        x0.ndim - 1)
    c0, ct, v = spec.posterior(s, t)
    rtol = col(step_rtol(spec, s, t), x0)
    close(var, col(v, x0), col(v, x0), rtol)
    terms = col(c0, x0) * x0, col(ct, xt) * xt
    close(mean, terms[0] + terms[1], terms[0].abs() + terms[1].abs(), rtol,
          atol=col(sqrt_abar_floor(spec, s), x0) * xt.abs())


def normal_logpdf(x, mean, var):
    return -0.5 * (x - mean) ** 2 / var - 0.5 * np.log(2 * np.pi * var)


@PROPS
@given(cases())
def test_bayes_log_density_difference_is_constant_in_x_s(case):
    """log q(x_s|x_t,x_0) - log q(x_t|x_s) - log q(x_s|x_0) must not depend on x_s (checked on a grid)."""
    spec, s, t, x0, xt = case
    mean, var = spec.build().posterior(x0, xt, tt(s), tt(t))
    x0, xt, mean = (a.reshape(len(s), -1)[:, 0].numpy() for a in (x0, xt, mean))
    var = var.flatten().numpy()
    sqrt_a, beta = spec.step(s, t)
    om_s, sqrt_abar_s = spec.one_minus_abar(s), np.sqrt(spec.abar(s))
    rtol = 100 * step_rtol(spec, s, t)
    for b in range(len(s)):
        if min(var[b], beta[b], om_s[b]) < 1e-8:
            continue  # a near-degenerate Gaussian: the coefficient check above covers it
        grid = mean[b] + math.sqrt(var[b]) * np.linspace(-4, 4, 9)
        parts = (normal_logpdf(grid, mean[b], var[b]), normal_logpdf(xt[b], sqrt_a[b] * grid, beta[b]),
                 normal_logpdf(grid, sqrt_abar_s[b] * x0[b], om_s[b]))
        diff = parts[0] - parts[1] - parts[2]
        scale = max(np.abs(p).max() for p in parts) + 1.0
        assert np.ptp(diff) <= rtol[b] * scale, (b, diff)



@pytest.mark.parametrize("spec", [Spec("vp", 4), Spec("vp", 4, 0.0, 20.0), Spec("vp", 4, 0.0, 0.05),
                                  Spec("cosine", 4), Spec("geometric", 4, 1e-4, 0.5)])
def test_posterior_accuracy_near_the_clean_level(spec):
    """Where 1 - abar and beta are tiny (s = 0 or times[0], t - s down to 1e-9), float64 keeps them to
    near full relative precision (expm1 of log differences); 1 - exp(.) would lose up to all digits."""
    s0 = np.array([0.0, spec.grid()[0]])
    s = np.repeat(s0, 4)
    t = s + np.tile([1e-9, 1e-7, 1e-5, 1e-3], 2)
    keep = s < t
    s, t = s[keep], t[keep]
    one, zero = torch.ones(len(s), 1, dtype=F64), torch.zeros(len(s), 1, dtype=F64)
    sched = spec.build()
    c0, var = (v.flatten().numpy() for v in sched.posterior(one, zero, tt(s), tt(t)))
    ct = sched.posterior(zero, one, tt(s), tt(t))[0].flatten().numpy()
    want = spec.posterior(s, t)
    r = step_rtol(spec, s, t)
    for got, ref in zip((c0, ct, var), want, strict=True):
        close(got, ref, ref, r, atol=1e-300)

# --------------------------------------------------------------- moment algebra: consistency, composition
@PROPS
@given(cases())
def test_marginal_consistency_and_composition_by_moment_algebra(case):
    spec, s, t, _, _ = case
    k = coefficients(spec.build(), s, t)
    abar_s, abar_t = spec.abar(s), spec.abar(t)
    om_s, om_t = spec.one_minus_abar(s), spec.one_minus_abar(t)
    sqrt_a, beta = spec.step(s, t)
    r, floor = step_rtol(spec, s, t), sqrt_abar_floor(spec, s)
    # each linear map against the reference
    close(k["sqrt_abar_s"], np.sqrt(abar_s), np.sqrt(abar_s), atol=1e-15)
    close(k["sd_s"], np.sqrt(om_s), np.sqrt(om_s))
    close(k["sqrt_abar_t"], np.sqrt(abar_t), np.sqrt(abar_t), atol=1e-15)
    close(k["sd_t"], np.sqrt(om_t), np.sqrt(om_t))
    close(k["sqrt_a"], sqrt_a, sqrt_a, atol=floor)
    close(k["sqrt_beta"], np.sqrt(beta), np.sqrt(beta), r)
    # composition: x_s = sqrt(abar_s) x0 + sd_s e1, x_t = sqrt(a) x_s + sqrt(beta) e2  =>  q(x_t | x0)
    close(k["sqrt_a"] * k["sqrt_abar_s"], np.sqrt(abar_t), np.sqrt(abar_t), atol=2e-15)
    close(k["sqrt_a"] ** 2 * k["sd_s"] ** 2 + k["sqrt_beta"] ** 2, om_t, om_t, r)
    # marginal consistency: x_t = sqrt(abar_t) x0 + sd_t e, x_s = c0 x0 + ct x_t + sqrt(var) e'
    close(k["c0"] + k["ct"] * k["sqrt_abar_t"], np.sqrt(abar_s), k["c0"] + np.abs(k["ct"]), r, atol=2e-15)
    close(k["ct"] ** 2 * k["sd_t"] ** 2 + k["var"], om_s, k["ct"] ** 2 * om_t + k["var"], r)
    # and the same joint: Cov(x_s, x_t) = ct (1 - abar_t) = sqrt(a) (1 - abar_s)
    close(k["ct"] * k["sd_t"] ** 2, sqrt_a * om_s, sqrt_a * om_s, r, atol=floor)


@PROPS
@given(cases())
def test_samples_with_given_noise_match_reference(case):
    """q_sample, q_step and posterior_sample are mean + standard deviation * noise for a given noise."""
    spec, s, t, x0, xt = case
    sched = spec.build()
    noise = torch.as_tensor(np.random.default_rng(len(s)).normal(size=x0.shape))
    S, T = tt(s), tt(t)
    c0, ct, var = spec.posterior(s, t)
    sqrt_a, beta = spec.step(s, t)
    r, floor = col(step_rtol(spec, s, t), x0), col(sqrt_abar_floor(spec, s), x0)
    for tau, got in ((s, sched.q_sample(x0, S, noise)), (t, sched.q_sample(x0, T, noise))):
        a, b = col(np.sqrt(spec.abar(tau)), x0) * x0, col(np.sqrt(spec.one_minus_abar(tau)), x0) * noise
        close(got, a + b, a.abs() + b.abs(), atol=1e-15 * x0.abs())
    a, b = col(sqrt_a, x0) * x0, col(np.sqrt(beta), x0) * noise
    close(sched.q_step(x0, S, T, noise), a + b, a.abs() + b.abs(), r, atol=floor * x0.abs())
    a, b, c = col(c0, x0) * x0, col(ct, x0) * xt, col(np.sqrt(var), x0) * noise
    close(sched.posterior_sample(x0, xt, S, T, noise), a + b + c, a.abs() + b.abs() + c.abs(), r,
          atol=floor * xt.abs())

# -------------------------------------------------------------------------------------- Monte Carlo
N_MC = 200_000


def check_joint_moments(xs: torch.Tensor, xt: torch.Tensor, spec: Spec, s: np.ndarray, t: np.ndarray,
                        x0: np.ndarray) -> None:
    """Row b of (x_s, x_t) [B, n] must have the joint moments of q(x_s|x_0) q(x_t|x_s) at (s[b], t[b], x0[b])
    to 6 standard errors of each estimator (n = 200k: a 10 % variance error is ~20 standard errors)."""
    n = xs.shape[1]
    xs, xt = xs.numpy(), xt.numpy()
    m_s, m_t = np.sqrt(spec.abar(s)) * x0, np.sqrt(spec.abar(t)) * x0
    v_s, v_t = spec.one_minus_abar(s), spec.one_minus_abar(t)
    cov = spec.step(s, t)[0] * v_s
    slack = 1e-10 * (1 + np.abs(x0))  # floating-point room for the degenerate v_s = 0 (vp at tau = 0)
    ds, dt = xs - xs.mean(1, keepdims=True), xt - xt.mean(1, keepdims=True)
    checks = {
        "mean x_s": (xs.mean(1), m_s, np.sqrt(v_s / n)),
        "mean x_t": (xt.mean(1), m_t, np.sqrt(v_t / n)),
        "var x_s": ((ds**2).sum(1) / (n - 1), v_s, v_s * math.sqrt(2 / (n - 1))),
        "var x_t": ((dt**2).sum(1) / (n - 1), v_t, v_t * math.sqrt(2 / (n - 1))),
        "cov": ((ds * dt).sum(1) / (n - 1), cov, np.sqrt((v_s * v_t + cov**2) / n)),
    }
    for name, (got, want, se) in checks.items():
        assert np.all(np.abs(got - want) <= 6 * se + slack), (name, got, want, se)


def forward_route(sched, x0, s, t):
    xs = sched.q_sample(x0, s)
    return xs, sched.q_step(xs, s, t)


def posterior_route(sched, x0, s, t):
    xt = sched.q_sample(x0, t)
    return sched.posterior_sample(x0, xt, s, t), xt


def run_monte_carlo(spec: Spec, s: np.ndarray, t: np.ndarray, seed: int, routes=None) -> None:
    """One row of n draws per time pair (per-sample times), x0 = 1.5, -0.7, 1.5, ... by row."""
    x0_rows = np.resize(np.array([1.5, -0.7]), len(s))
    x0 = torch.as_tensor(x0_rows)[:, None].expand(len(s), N_MC)
    sched = spec.build()
    for route in routes or (forward_route, posterior_route):
        torch.manual_seed(seed)
        check_joint_moments(*route(sched, x0, tt(s), tt(t)), spec, s, t, x0_rows)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_monte_carlo_composition_and_marginal_consistency(spec, data, seed):
    pairs = data.draw(st.lists(time_pair(spec.grid()), min_size=1, max_size=3))
    run_monte_carlo(spec, np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), seed)


def _scaled(method: str, index: int, factor: float):
    original = getattr(Schedule, method)

    def wrong(self, s, t):
        out = list(original(self, s, t))
        out[index] = out[index] * factor
        return tuple(out)

    return wrong


@pytest.mark.parametrize(("route", "method", "index", "factor"), [
    (posterior_route, "posterior_coefficients", 2, 1.1),  # posterior variance 10 % too large
    (posterior_route, "posterior_coefficients", 2, 0.9),  # ... 10 % too small
    (posterior_route, "posterior_coefficients", 1, 1.2),  # ct 20 % off
    (forward_route, "step_coefficients", 1, 1.1),  # one-step beta 10 % off
    (forward_route, "step_coefficients", 0, 1.1),  # one-step sqrt(a) 10 % off
])
def test_monte_carlo_negative_controls(monkeypatch, route, method, index, factor):
    """The Monte Carlo check is not vacuous: deliberate errors of a few percent fail it."""
    spec = Spec("vp", 4)
    s, t = spec.grid()[1:2], spec.grid()[2:3]
    # by design, not by luck: a 10 % posterior variance error moves Var(x_s) by > 3x the 6-SE tolerance
    v_s = spec.one_minus_abar(s)[0]
    assert 0.1 * spec.posterior(s, t)[2][0] > 3 * 6 * v_s * math.sqrt(2 / (N_MC - 1))
    run_monte_carlo(spec, s, t, seed=0, routes=[route])  # the correct code passes
    monkeypatch.setattr(Schedule, method, _scaled(method, index, factor))
    with pytest.raises(AssertionError):
        run_monte_carlo(spec, s, t, seed=0, routes=[route])


# --------------------------------------------------------------------------- schedule-level properties
@PROPS
@given(spec=specs(), taus=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20))
def test_alpha_bar_matches_reference_and_is_monotone(spec, taus):
    sched = spec.build()
    tau = np.sort(np.array(taus + [0.0, 1.0]))
    got = sched.alpha_bar(tt(tau)).numpy()
    want = spec.abar(tau)
    close(got, want, want, rtol=1e-12, atol=1e-30 + 2e-15 * np.sqrt(want))  # see sqrt_abar_floor
    assert np.all((got >= 0) & (got <= 1))
    assert np.all(np.diff(got) <= 0)


@PROPS
@given(spec=specs())
def test_grid_betas_and_alpha_bar(spec):
    sched = spec.build()
    assert sched.num_steps == spec.T and sched.times.dtype == F64 and sched.times.shape == (spec.T + 1,)
    np.testing.assert_allclose(sched.times.numpy(), spec.grid(), rtol=0, atol=1e-15)
    abar = sched.alpha_bar(sched.times).numpy()
    assert np.all(np.diff(abar) < 0) and np.all((abar > 0) & (abar <= 1))
    betas = sched.betas.numpy()
    assert betas.shape == (spec.T,) and np.all((betas > 0) & (betas <= 1))
    want = spec.step(spec.grid()[:-1], spec.grid()[1:])[1]
    close(betas, want, want, step_rtol(spec, spec.grid()[:-1], spec.grid()[1:]))


@PROPS
@given(cases())
def test_posterior_variance_between_zero_and_beta(case):
    spec, s, t, x0, xt = case
    sched = spec.build()
    var = sched.posterior(x0, xt, tt(s), tt(t))[1].flatten().numpy()
    one, zero = torch.ones(len(s), 1, dtype=F64), torch.zeros(len(s), 1, dtype=F64)
    own_beta = sched.q_step(zero, tt(s), tt(t), noise=one).flatten().numpy() ** 2
    assert np.all(var >= 0) and np.all(var <= own_beta * (1 + 1e-14))
    assert np.all(var <= spec.step(s, t)[1] * (1 + step_rtol(spec, s, t)))


@PROPS
@given(case=cases(), x_dtype=st.sampled_from([torch.float32, torch.float64]),
       t_dtype=st.sampled_from([torch.float32, torch.float64]))
def test_dtype_and_device_are_preserved(case, x_dtype, t_dtype):
    spec, s, t, x0, xt = case
    sched = spec.build()
    S, T = tt(s).to(t_dtype), tt(t).to(t_dtype)
    if not (S < T).all():  # float32 rounding can merge a close pair
        return
    x0c, xtc = x0.to(x_dtype), xt.to(x_dtype)
    noise = torch.randn_like(x0c)
    outs = {"q_sample": sched.q_sample(x0c, T, noise), "q_step": sched.q_step(x0c, S, T, noise),
            "posterior_mean": sched.posterior(x0c, xtc, S, T)[0], "posterior_var": sched.posterior(x0c, xtc, S, T)[1],
            "posterior_sample": sched.posterior_sample(x0c, xtc, S, T, noise), "alpha_bar": sched.alpha_bar(T)}
    for name, out in outs.items():
        want_dtype = t_dtype if name == "alpha_bar" else x_dtype
        assert out.dtype == want_dtype and out.device == x0c.device, name
        assert torch.isfinite(out).all(), name
    if x_dtype == torch.float32:
        # float32 loses only the final rounding: compare with float64 at the same (float32) inputs, within a
        # few float32 ulps of the sum of the terms' magnitudes (all coefficients are >= 0)
        x0d, xtd, nd = x0c.double(), xtc.double(), noise.double()
        exact = {"q_sample": (sched.q_sample(x0d, T, nd), sched.q_sample(x0d.abs(), T, nd.abs())),
                 "posterior_sample": (sched.posterior_sample(x0d, xtd, S, T, nd),
                                      sched.posterior_sample(x0d.abs(), xtd.abs(), S, T, nd.abs()))}
        for name, (ref, magnitude) in exact.items():
            assert ((outs[name].double() - ref).abs() <= 8 * 2.0**-24 * magnitude + 1e-30).all(), name
