"""Critically-damped Langevin diffusion (gdiff/processes/cld.py) against independent float64 references.

References: the transition matrix is ``scipy.linalg.expm(F dB)``; a covariance is A S0 A^T plus the noise
integral int_0^dB exp(F r) Q exp(F r)^T dr, Q = diag(0, 2 Gamma), by ``scipy.integrate.quad_vec``; the posterior
conditions the 4x4 joint Gaussian of (u_s, u_t) given x0 with numpy. Everything is read through the public
API (the posterior's covariance from ``posterior_sample`` with unit noise vectors). Monte Carlo checks use
200k draws and 6 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdiff.processes import CLD, from_config

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
F64 = torch.float64


def drift(M: float) -> np.ndarray:
    G = 2 * math.sqrt(M)
    return np.array([[0.0, 1 / M], [-1.0, -G / M]])


def ref_kernel(M: float, dB: float, S0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, Cov) of u after dB from a state with covariance S0: matrix exponential + numerical integral."""
    F, G = drift(M), 2 * math.sqrt(M)
    Q = np.diag([0.0, 2 * G])
    A = scipy.linalg.expm(F * dB)
    noise, _ = scipy.integrate.quad_vec(lambda r: (E := scipy.linalg.expm(F * r)) @ Q @ E.T, 0.0, dB,
                                        epsabs=1e-14, epsrel=1e-13)
    return A, A @ S0 @ A.T + noise


def ref_posterior(M: float, g: float, beta: float, s: float, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(c, K, P): q(u_s | u_t, x0) = N(c x0 + K u_t, P), by conditioning the joint Gaussian of (u_s, u_t)."""
    A_s, S_s = ref_kernel(M, beta * s, np.diag([0.0, g * M]))
    A, S_t = ref_kernel(M, beta * (t - s), S_s)
    a_s = A_s[:, 0]
    joint_cross = S_s @ A.T  # Cov(u_s, u_t)
    K = joint_cross @ np.linalg.inv(S_t)
    return a_s - K @ (A @ a_s), K, S_s - K @ joint_cross.T


def t64(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def as_mat(m) -> np.ndarray:
    return np.array([[float(m[0]), float(m[1])], [float(m[2]), float(m[3])]])


def as_sym(s) -> np.ndarray:
    return np.array([[float(s[0]), float(s[1])], [float(s[1]), float(s[2])]])


masses = st.floats(0.05, 4.0)
gammas = st.floats(0.0, 2.0)


# ------------------------------------------------------------------------------------------- the kernel
@PROPS
@given(M=masses, dB=st.floats(1e-3, 12.0), sxx=st.floats(0.0, 2.0), svv=st.floats(0.0, 2.0))
def test_kernel_matches_expm_and_integrated_covariance(M, dB, sxx, svv):
    cld = CLD(mass=M)
    A_ref, S_ref = ref_kernel(M, dB, np.diag([sxx, svv]))
    A = as_mat(cld.transition_matrix(t64(dB)))
    N = as_sym(cld.noise_covariance(t64(dB)))
    np.testing.assert_allclose(A, A_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(A @ np.diag([sxx, svv]) @ A.T + N, S_ref, rtol=1e-9, atol=1e-14)


@PROPS
@given(M=masses, dB=st.floats(1e-3, 12.0), sxx=st.floats(0.0, 2.0), svv=st.floats(0.0, 2.0))
def test_kernel_matches_the_closed_form_of_the_issue(M, dB, sxx, svv):
    """The covariance formulas of gdiff issue 18 (initial covariance diag(Sxx0, Svv0)), written out."""
    G, B = 2 * math.sqrt(M), dB
    e, y = math.exp(-4 * B / G), 4 * B / G
    sxx_ref = e * (sxx + math.expm1(y) + y * (sxx - 1) + 4 * B**2 / G**2 * (sxx - 2) + 16 * B**2 / G**4 * svv)
    sxv_ref = e * (-B * sxx + 4 * B / G**2 * svv - 2 * B**2 / G * (sxx - 2) - 8 * B**2 / G**3 * svv)
    svv_ref = e * (G**2 / 4 * math.expm1(y) + B * G + svv * (1 - y + 4 * B**2 / G**2) + B**2 * (sxx - 2))
    cld = CLD(mass=M)
    A = as_mat(cld.transition_matrix(t64(dB)))
    S = A @ np.diag([sxx, svv]) @ A.T + as_sym(cld.noise_covariance(t64(dB)))
    np.testing.assert_allclose(S, [[sxx_ref, sxv_ref], [sxv_ref, svv_ref]], rtol=1e-9, atol=1e-12)


@PROPS
@given(M=masses, g=gammas, beta=st.floats(0.5, 8.0), tau=st.floats(1e-3, 1.0))
def test_marginal_from_data(M, g, beta, tau):
    cld = CLD(mass=M, gamma=g, beta=beta)
    A_ref, S_ref = ref_kernel(M, beta * tau, np.diag([0.0, g * M]))
    a_x, a_v, S = cld.marginal(t64(tau))
    np.testing.assert_allclose([float(a_x), float(a_v)], A_ref[:, 0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(as_sym(S), S_ref, rtol=1e-9, atol=1e-14)


def test_small_increments_keep_relative_accuracy():
    """Near dB = 0 the noise covariance is O(dB^3) in x: the series keeps it accurate where e^y - 1 - y - y^2/2
    would cancel."""
    cld = CLD(mass=0.25)
    for dB in (1e-6, 1e-4, 1e-2, 0.2):
        _, S_ref = ref_kernel(0.25, dB, np.zeros((2, 2)))
        np.testing.assert_allclose(as_sym(cld.noise_covariance(t64(dB))), S_ref, rtol=1e-7)


# ------------------------------------------------------------------------------------------ posterior
@PROPS
@given(M=masses, g=st.floats(1e-3, 2.0), beta=st.floats(0.5, 8.0), t=st.floats(0.05, 1.0),
       frac=st.sampled_from([0.0, 0.5]) | st.floats(0.0, 0.95))
def test_posterior_matches_conditioned_joint_gaussian(M, g, beta, t, frac):
    s = frac * t
    cld = CLD(mass=M, gamma=g, beta=beta)
    c_ref, K_ref, P_ref = ref_posterior(M, g, beta, s, t)
    x0, u_t = t64(0.7), t64(-0.3, 0.4)
    mean = cld.posterior_mean(x0.reshape(1, 1), u_t.reshape(1, 2), t64(s), t64(t)).reshape(2).numpy()
    np.testing.assert_allclose(mean, c_ref * 0.7 + K_ref @ u_t.numpy(), rtol=1e-7, atol=1e-9)
    cols = [cld.posterior_sample(x0.reshape(1, 1), u_t.reshape(1, 2), t64(s), t64(t),
                                 noise=torch.tensor([e], dtype=F64)).reshape(2).numpy() - mean
            for e in ([1.0, 0.0], [0.0, 1.0])]
    L = np.stack(cols, axis=1)
    np.testing.assert_allclose(L @ L.T, P_ref, rtol=1e-6, atol=1e-9)


def test_posterior_at_the_clean_level_returns_x0():
    cld = CLD()
    x0 = torch.randn(6, 3, dtype=F64)
    u_t = torch.randn(6, 6, dtype=F64)
    u_s = cld.posterior_sample(x0, u_t, torch.zeros(6, dtype=F64), torch.full((6,), 0.5, dtype=F64))
    assert torch.equal(cld.data(u_s), x0)
    assert not torch.equal(u_s[:, 3:], torch.zeros_like(x0))  # v0 stays random


@pytest.mark.parametrize(("s", "t"), [(0.0, 0.5), (0.25, 0.5), (0.5, 1.0)])
def test_chapman_kolmogorov(s, t):
    """u_t ~ q(u_t | x0), then u_s ~ q(u_s | u_t, x0): u_s has the forward marginal q(u_s | x0)."""
    cld, n = CLD(), 200_000
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((n, 1), 0.8, dtype=F64)
    u_t = cld.q_sample(x0, t, noise=torch.randn(n, 2, generator=gen, dtype=F64))
    u_s = cld.posterior_sample(x0, u_t, s, t, noise=torch.randn(n, 2, generator=gen, dtype=F64)).numpy()
    a_x, a_v, S = cld.marginal(t64(s))
    S = as_sym(S)
    mean_ref = 0.8 * np.array([float(a_x), float(a_v)])
    se = np.sqrt(np.diag(S) / n)
    assert np.all(np.abs(u_s.mean(0) - mean_ref) <= 6 * se + 1e-12)
    cov = np.cov(u_s.T)
    se_cov = np.sqrt((S**2 + np.outer(np.diag(S), np.diag(S))) / n)
    assert np.all(np.abs(cov - S) <= 6 * se_cov + 1e-12)


def test_chapman_kolmogorov_catches_a_wrong_posterior():
    """Negative control: a posterior covariance 10 % too large fails the same moment check."""
    cld, n, s, t = CLD(), 200_000, 0.25, 0.5
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((n, 1), 0.8, dtype=F64)
    u_t = cld.q_sample(x0, t, noise=torch.randn(n, 2, generator=gen, dtype=F64))
    noise = math.sqrt(1.1) * torch.randn(n, 2, generator=gen, dtype=F64)
    u_s = cld.posterior_sample(x0, u_t, s, t, noise=noise).numpy()
    S = as_sym(cld.marginal(t64(s))[2])
    se_cov = np.sqrt((S**2 + np.outer(np.diag(S), np.diag(S))) / n)
    assert np.any(np.abs(np.cov(u_s.T) - S) > 6 * se_cov)


# ------------------------------------------------------------------------------------------ transitions
@PROPS
@given(M=masses, s=st.floats(0.0, 0.9), gap=st.floats(0.01, 1.0))
def test_transition_error_whitened_is_the_gaussian_nll(M, s, gap):
    t = min(s + gap, 1.0)
    cld = CLD(mass=M)
    u_s, u_t = torch.randn(3, 4, dtype=F64), torch.randn(3, 4, dtype=F64)
    S, T = torch.full((3,), s, dtype=F64), torch.full((3,), t, dtype=F64)
    A, N = ref_kernel(M, cld.beta * (t - s), np.zeros((2, 2)))
    err = cld.transition_error(u_t, u_s, S, T, whiten=True).numpy()
    plain = cld.transition_error(u_t, u_s, S, T).numpy()
    for i in range(3):
        for d in range(2):
            r = u_t[i, [d, d + 2]].numpy() - A @ u_s[i, [d, d + 2]].numpy()
            np.testing.assert_allclose(err[i, [d, d + 2]].sum(), 0.5 * r @ np.linalg.solve(N, r), rtol=1e-6)
            np.testing.assert_allclose(plain[i, [d, d + 2]], r**2, rtol=1e-9, atol=1e-14)


def test_q_step_moments():
    cld, n = CLD(mass=0.5, beta=3.0), 200_000
    u_s = torch.tensor([[0.3, -1.0]], dtype=F64).expand(n, 2)
    u_t = cld.q_step(u_s, 0.2, 0.6, noise=torch.randn(n, 2, generator=torch.Generator().manual_seed(1),
                                                        dtype=F64)).numpy()
    A, N = ref_kernel(0.5, 3.0 * 0.4, np.zeros((2, 2)))
    assert np.all(np.abs(u_t.mean(0) - A @ np.array([0.3, -1.0])) <= 6 * np.sqrt(np.diag(N) / n))
    np.testing.assert_allclose(np.cov(u_t.T), N, rtol=0.02, atol=1e-4)


# -------------------------------------------------------------------------------------------- limits
def test_limits():
    cld = CLD(mass=0.25, gamma=0.04, beta=4.0)
    x0 = torch.randn(100_000, 1, dtype=F64, generator=torch.Generator().manual_seed(2))
    u0 = cld.q_sample(x0, 0.0)
    assert torch.equal(cld.data(u0), x0)  # B -> 0 gives (x0, v0), v0 ~ N(0, gamma M)
    assert abs(u0[:, 1].var().item() / (0.04 * 0.25) - 1) < 0.03
    A = as_mat(cld.transition_matrix(t64(0.0)))
    assert np.array_equal(A, np.eye(2)) and np.array_equal(as_sym(cld.noise_covariance(t64(0.0))), np.zeros((2, 2)))
    a_x, a_v, S = CLD(beta=60.0).marginal(t64(1.0))  # large B: the prior N(0, diag(1, M))
    assert abs(float(a_x)) < 1e-20 and abs(float(a_v)) < 1e-20
    np.testing.assert_allclose(as_sym(S), np.diag([1.0, 0.25]), atol=1e-20, rtol=1e-14)
    prior = cld.prior_sample(200_000, (1,), dtype=F64, generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(prior.var(0).numpy(), [1.0, 0.25], rtol=0.02)


# ------------------------------------------------------------------------------------ config and errors
def test_from_config_and_errors():
    cld = from_config({"process": "cld", "num_steps": 4, "mass": 0.5, "time_sampling": "grid"})
    assert isinstance(cld, CLD) and cld.num_steps == 4 and cld.mass == 0.5
    assert torch.equal(cld.times, torch.arange(5, dtype=F64) / 4)
    assert cld.state_shape((3, 8, 8)) == (6, 8, 8) and cld.state_shape((2,)) == (4,)
    with pytest.raises(ValueError, match=r"diffusion.process.*'sde'"):
        from_config({"process": "sde"})
    with pytest.raises(ValueError, match=r"diffusion \(cld\): mass"):
        from_config({"process": "cld", "mass": -1})
    with pytest.raises(ValueError, match=r"unknown recipe key diffusion.beta_max"):
        from_config({"process": "cld", "beta_max": 3})
    with pytest.raises(ValueError, match=r"diffusion.schedule.*cld"):
        from_config({"process": "cld", "schedule": "cosine"})
    with pytest.raises(ValueError, match=r"s_time < t"):
        cld.posterior_mean(torch.zeros(1, 1), torch.zeros(1, 2), 0.5, 0.5)
    with pytest.raises(ValueError, match=r"\[B, 2C, \.\.\.\]"):
        cld.posterior_mean(torch.zeros(1, 2), torch.zeros(1, 2), 0.0, 0.5)
