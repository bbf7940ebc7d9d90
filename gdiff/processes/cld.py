"""Critically-damped Langevin diffusion (CLD; Dockhorn, Vahdat & Kreis, ICLR 2022) in phase space u = (x, v).

The SDE, per dimension, with B(tau) = beta tau (constant beta) and mass M:

    dx = M^-1 v beta dtau,    dv = (-x - Gamma M^-1 v) beta dtau + sqrt(2 Gamma beta) dW,    Gamma = 2 sqrt(M)

(critical damping). Prior: x ~ N(0, I), v ~ N(0, M I). Data start at x = x0 with a random initial velocity
v0 ~ N(0, gamma M I). The state u is [x, v] concatenated along dim 1: [B, 2C, ...] for data [B, C, ...].

The process is linear, so every operation is Gaussian with per-sample 2x2 coefficients (the same for every
dimension). With dB the increase of B and k = 2 dB / Gamma, y = 2 k:

    transition    E[u_t | u_s] = A u_s,   A = exp(F dB) = exp(-k) [[1 + k, 4 dB / Gamma^2], [-dB, 1 - k]],
                  F = [[0, 1/M], [-1, -Gamma/M]]
    noise         Cov[u_t | u_s] = N = exp(-y) [[R, 4 dB^2 / Gamma], [4 dB^2 / Gamma, (Gamma^2 / 4) R + 2 dB Gamma]],
                  R = e^y - 1 - y - y^2 / 2  (a series for y < 1: nothing cancels near dB = 0)
    from data     q(u_s | x0) = N(a_s x0, S_s),  a_s = A(B_s) [1, 0]^T,  S_s = A(B_s) diag(0, gamma M) A(B_s)^T + N(B_s)
    posterior     q(u_s | u_t, x0) (v0 integrated out), by conditioning the joint Gaussian of (u_s, u_t):
                  K = S_s A^T S_t^-1,  S_t = A S_s A^T + N,  mean = (I - K A) a_s x0 + K u_t,
                  Cov = (I - K A) S_s (I - K A)^T + K N K^T      (Joseph form: symmetric, positive semi-definite)

(A and N between s and t use dB = B_t - B_s.) Coefficients are computed in float64 and cast to the state's
dtype. At s = 0 the posterior's x part is x0 exactly (S_0 has no x variance), so the last reverse step returns
G's x0 prediction. There is no scalar signal fraction: terms and parameterisations that need one (eps, the
forward transition, the Gaussian baseline, DDIM) refuse CLD at build time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from gdiff import sections
from gdiff.processes.base import ForwardProcess

SERIES_BELOW = 1.0  # R(y) by its Taylor series below this y, directly above (relative error < 1e-15)
SERIES_TERMS = 20

Mat = tuple[Tensor, Tensor, Tensor, Tensor]  # a 2x2 matrix per sample: (m11, m12, m21, m22), each [B]
Sym = tuple[Tensor, Tensor, Tensor]  # a symmetric 2x2 matrix per sample: (s11, s12, s22)


def _remainder3(y: Tensor) -> Tensor:
    """e^y - 1 - y - y^2 / 2 for y >= 0 (float64), without cancellation near 0."""
    small = y.clamp(max=SERIES_BELOW)
    term, series = small.pow(3) / 6, torch.zeros_like(y)
    for k in range(4, SERIES_TERMS + 4):
        series = series + term
        term = term * small / k
    return torch.where(y < SERIES_BELOW, series, torch.expm1(y) - y - 0.5 * y.square())


def _matmul(a: Mat, b: Mat) -> Mat:
    return (a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3],
            a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3])


def _sym(m: Mat) -> Sym:
    return m[0], 0.5 * (m[1] + m[2]), m[3]


def _full(s: Sym) -> Mat:
    return s[0], s[1], s[1], s[2]


def _transpose(m: Mat) -> Mat:
    return m[0], m[2], m[1], m[3]


def _congruence(m: Mat, s: Sym) -> Sym:
    """m s m^T."""
    return _sym(_matmul(_matmul(m, _full(s)), _transpose(m)))


def _add(a: Sym, b: Sym) -> Sym:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _cholesky(s: Sym) -> tuple[Tensor, Tensor, Tensor]:
    """(l11, l21, l22) of s = L L^T, L lower triangular; a zero pivot gives a zero column (s singular)."""
    l11 = s[0].clamp(min=0).sqrt()
    l21 = torch.where(l11 > 0, s[1] / torch.where(l11 > 0, l11, 1.0), 0.0)
    return l11, l21, (s[2] - l21.square()).clamp(min=0).sqrt()


@dataclass(frozen=True, eq=False)
class CLD(ForwardProcess):
    """Critically-damped Langevin diffusion: ``mass`` M, initial velocity variance ``gamma`` M, B(tau) = ``beta``
    tau, a grid of ``num_steps`` + 1 times i / T (see the module docstring). Build with :meth:`from_config`."""

    name: str = field(default="cld", init=False)
    num_steps: int = 2
    mass: float = 0.25
    gamma: float = 0.04
    beta: float = 4.0
    time_sampling: str = "continuous"
    t_min: float = 1e-4
    validate: bool = True
    times: Tensor = field(init=False, repr=False)
    _memo: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_steps", self._check_steps(self.num_steps))
        self._check_time_sampling()
        for key, low in (("mass", 0), ("gamma", None), ("beta", 0)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    value > 0 if low is not None else value >= 0):
                raise ValueError(f"diffusion (cld): {key} must be a number {'>' if low is not None else '>='} 0, "
                                 f"got {value!r}")
        if not 0 <= self.t_min < 1:
            raise ValueError(f"diffusion (cld): t_min must lie in [0, 1), got {self.t_min!r}")
        object.__setattr__(self, "times", torch.arange(self.num_steps + 1, dtype=torch.float64) / self.num_steps)

    @classmethod
    def from_config(cls, config: dict) -> CLD:
        """Build from ``{num_steps, mass, gamma, beta, time_sampling, t_min}`` (all optional)."""
        return sections.call(cls, config, "diffusion")

    @property
    def damping(self) -> float:
        """Gamma = 2 sqrt(M) (critical damping)."""
        return 2 * math.sqrt(self.mass)

    # ------------------------------------------------------------------------ per-sample coefficients
    def integrated_beta(self, tau: Tensor) -> Tensor:
        """B(tau) = beta tau, float64, same shape as ``tau``."""
        return self.beta * self._as_times(tau).to(torch.float64)

    def transition_matrix(self, dB: Tensor) -> Mat:
        """A = exp(F dB) per sample, dB float64 [B] >= 0."""
        g = self.damping
        k = 2 * dB / g
        decay = torch.exp(-k)
        return decay * (1 + k), decay * (4 * dB / g**2), decay * (-dB), decay * (1 - k)

    def noise_covariance(self, dB: Tensor) -> Sym:
        """N = Cov[u_t | u_s] per sample (the kernel from a point), dB float64 [B] >= 0."""
        g = self.damping
        y = 4 * dB / g
        decay, rem = torch.exp(-y), _remainder3(y)
        return decay * rem, decay * (4 * dB.square() / g), decay * (g**2 / 4 * rem + 2 * dB * g)

    def marginal(self, tau: Tensor) -> tuple[Tensor, Tensor, Sym]:
        """q(u_tau | x0) = N(a x0, S): (a_x, a_v, S) per sample, float64 [B] each."""
        B = self.integrated_beta(tau)
        A = self.transition_matrix(B)
        return A[0], A[2], _add(_congruence(A, (torch.zeros_like(B), torch.zeros_like(B),
                                                self.gamma * self.mass * torch.ones_like(B))),
                                self.noise_covariance(B))

    def posterior_coefficients(self, s: Tensor, t: Tensor) -> tuple[tuple[Tensor, Tensor], Mat, Sym]:
        """((c_x, c_v), K, P) of q(u_s | u_t, x0) = N(c x0 + K u_t, P) for float64 times [B] with s < t."""
        self._check_order(s, t)
        a_x, a_v, S_s = self.marginal(s)
        dB = self.integrated_beta(t) - self.integrated_beta(s)
        A, N = self.transition_matrix(dB), self.noise_covariance(dB)
        S_t = _add(_congruence(A, S_s), N)
        det = S_t[0] * S_t[2] - S_t[1].square()
        S_t_inv = (S_t[2] / det, -S_t[1] / det, -S_t[1] / det, S_t[0] / det)
        K = _matmul(_matmul(_full(S_s), _transpose(A)), S_t_inv)
        KA = _matmul(K, A)
        I_KA = (1 - KA[0], -KA[1], -KA[2], 1 - KA[3])
        c = (I_KA[0] * a_x + I_KA[1] * a_v, I_KA[2] * a_x + I_KA[3] * a_v)
        return c, K, _add(_congruence(I_KA, S_s), _congruence(K, N))

    # ------------------------------------------------------------------------------------- on states
    def state_shape(self, data_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(2 C, ...): x and v stacked along the first axis."""
        return (2 * data_shape[0], *data_shape[1:])

    def data(self, u: Tensor) -> Tensor:
        """x, the first half of u along dim 1."""
        return u[:, : u.shape[1] // 2]

    @staticmethod
    def _split(u: Tensor) -> tuple[Tensor, Tensor]:
        c = u.shape[1] // 2
        return u[:, :c], u[:, c:]

    def _apply(self, m: Mat, u: Tensor) -> Tensor:
        x, v = self._split(u)
        e = self._expand
        return torch.cat([e(m[0], u) * x + e(m[1], u) * v, e(m[2], u) * x + e(m[3], u) * v], dim=1)

    def _correlated(self, cov: Sym, noise: Tensor) -> Tensor:
        """L noise with L L^T = cov, noise [B, 2C, ...] of independent N(0, 1)."""
        l11, l21, l22 = _cholesky(cov)
        n1, n2 = self._split(noise)
        e = self._expand
        return torch.cat([e(l11, noise) * n1, e(l21, noise) * n1 + e(l22, noise) * n2], dim=1)

    def prior_sample(self, batch: int, data_shape: tuple[int, ...], device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> Tensor:
        """u_T = [x, v] with x ~ N(0, I), v ~ N(0, M I): [batch, 2C, ...]."""
        u = torch.randn(batch, *self.state_shape(tuple(data_shape)), generator=generator, device=device,
                        dtype=dtype)
        x, v = self._split(u)
        return torch.cat([x, math.sqrt(self.mass) * v], dim=1)

    def q_sample(self, x0: Tensor, t: Tensor | float, noise: Tensor | None = None) -> Tensor:
        """u_t ~ q(u_t | x0) (v0 integrated out), [B, 2C, ...]; ``noise`` [B, 2C, ...] reparameterises it."""
        t = self._batch_times(t, x0, "t")
        a_x, a_v, S = self.marginal(t)
        e = self._expand
        mean = torch.cat([e(a_x, x0) * x0, e(a_v, x0) * x0], dim=1)
        return mean + self._correlated(S, self._noise(noise, mean))

    def q_step(self, u_s: Tensor, s_time: Tensor | float, t: Tensor | float, noise: Tensor | None = None) -> Tensor:
        """u_t ~ q(u_t | u_s) = N(A u_s, N) for s_time < t."""
        s, t = self._batch_times(s_time, u_s, "s_time"), self._batch_times(t, u_s, "t")
        self._check_order(s, t)
        dB = self.integrated_beta(t) - self.integrated_beta(s)
        return self._apply(self.transition_matrix(dB), u_s) + self._correlated(self.noise_covariance(dB),
                                                                                self._noise(noise, u_s))

    def draw_pair(self, x0: Tensor, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(u_s, u_t): u_s ~ q(u_s | x0), then u_t ~ q(u_t | u_s)."""
        u_s = self.q_sample(x0, s)
        return u_s, self.q_step(u_s, s, t)

    def transition_mean(self, u_s: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """A u_s for float64 times [B] with s < t."""
        self._check_order(s, t)
        return self._apply(self.transition_matrix(self.integrated_beta(t) - self.integrated_beta(s)), u_s)

    def transition_error(self, u_t: Tensor, u_s: Tensor, s: Tensor, t: Tensor, whiten: bool = False) -> Tensor:
        """r^2 with r = u_t - A u_s; ``whiten``: (L^-1 r)^2 / 2 with N = L L^T (sums to r^T N^-1 r / 2)."""
        r = u_t - self.transition_mean(u_s, s, t)
        if not whiten:
            return r.square()
        l11, l21, l22 = _cholesky(self.noise_covariance(self.integrated_beta(t) - self.integrated_beta(s)))
        rx, rv = self._split(r)
        e = self._expand
        w1 = rx / e(l11, r)
        w2 = (rv - e(l21, r) * w1) / e(l22, r)
        return 0.5 * torch.cat([w1, w2], dim=1).square()

    def _posterior(self, x0: Tensor, u_t: Tensor, s_time: Tensor | float,
                   t: Tensor | float) -> tuple[Tensor, Sym]:
        if u_t.shape[0] != x0.shape[0] or u_t.shape[1] != 2 * x0.shape[1] or u_t.shape[2:] != x0.shape[2:]:
            raise ValueError(f"the state u_t must have shape [B, 2C, ...] for x0 [B, C, ...]; got u_t "
                             f"{tuple(u_t.shape)}, x0 {tuple(x0.shape)}")
        s, t = self._batch_times(s_time, u_t, "s_time"), self._batch_times(t, u_t, "t")
        c, K, P = self.posterior_coefficients(s, t)
        e = self._expand
        mean = self._apply(K, u_t) + torch.cat([e(c[0], x0) * x0, e(c[1], x0) * x0], dim=1)
        return mean, P

    def posterior_mean(self, x0: Tensor, u_t: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """c x0 + K u_t, [B, 2C, ...]."""
        return self._posterior(x0, u_t, s, t)[0]

    def posterior_sample(self, x0: Tensor, u_t: Tensor, s: Tensor | float, t: Tensor | float,
                         noise: Tensor | None = None) -> Tensor:
        """u_s ~ q(u_s | u_t, x0), differentiable in x0 and u_t (reparameterised)."""
        mean, P = self._posterior(x0, u_t, s, t)
        return mean + self._correlated(P, self._noise(noise, mean))
