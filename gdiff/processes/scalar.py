"""The scalar forward processes (vp, geometric, cosine) and their Gaussian posterior for any pair of times.

A schedule is a continuous signal fraction ``alpha_bar(tau)``, tau in [0, 1], plus a grid of T + 1 times
``times[0] < ... < times[T]`` (``times[0]`` is the clean level). For times s < t:

* marginal      q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)
* one step      q(x_t | x_s) = N(sqrt(a) x_s, beta I),  a = abar_t / abar_s,  beta = 1 - a
* posterior     q(x_s | x_t, x_0) = N(c0 x_0 + ct x_t, var) with
                c0 = sqrt(abar_s) beta / (1 - abar_t),  ct = sqrt(a) (1 - abar_s) / (1 - abar_t),
                var = beta (1 - abar_s) / (1 - abar_t).

Times are per-sample tensors [B], broadcast over the other dimensions of x. Coefficients are computed in
float64 from ``log alpha_bar`` (``1 - abar`` as ``-expm1(log abar)``, so nothing cancels near the clean
level) and cast to the dtype of x, so float64 inputs give float64-exact results and float32 inputs lose
nothing but the final rounding.

The time grid, the training draws of (s, t) and the value checks of times come from
:class:`gdiff.processes.base.ForwardProcess`; the state is x itself (``state_shape`` = data shape).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from gdiff import sections
from gdiff.processes.base import ForwardProcess

COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s in abar = cos^2(((tau + s) / (1 + s)) pi / 2)
VP_EPS = 1e-3  # DDGAN grid starts at tau_0 = eps


def _vp_log_abar(beta_min: float, beta_max: float) -> Callable[[Tensor], Tensor]:
    return lambda tau: -0.5 * (beta_max - beta_min) * tau.square() - beta_min * tau


def _geometric_log_abar(beta_min: float, beta_max: float) -> Callable[[Tensor], Tensor]:
    return lambda tau: torch.log1p(-beta_min * (beta_max / beta_min) ** tau)


def _cosine_log_abar(offset: float) -> Callable[[Tensor], Tensor]:
    tiny = torch.finfo(torch.float64).tiny

    def log_abar(tau: Tensor) -> Tensor:
        cos = torch.cos((tau + offset) / (1 + offset) * (math.pi / 2)).clamp(min=tiny, max=1.0)
        return 2 * torch.log(cos)

    return log_abar


@dataclass(frozen=True, eq=False)
class Schedule(ForwardProcess):
    """A noise schedule: ``alpha_bar(tau)`` on [0, 1] and a grid of ``num_steps + 1`` times.

    ``time_sampling`` says how training draws a pair (s, t): ``"grid"`` draws a grid step uniformly
    (DDGAN), ``"continuous"`` draws t ~ U(t_min, 1] and s = max(t - 1/T, 0) (SIDDM).
    ``validate=False`` skips the value checks of times (see the module docstring and :meth:`unchecked`).
    Build with :meth:`vp`, :meth:`geometric` or :meth:`cosine`.
    """

    name: str
    num_steps: int
    log_alpha_bar_fn: Callable[[Tensor], Tensor] = field(repr=False)
    times: Tensor = field(repr=False)
    time_sampling: str = "grid"
    t_min: float = 1e-4
    validate: bool = True
    _memo: dict = field(default_factory=dict, init=False, repr=False)  # the unchecked twin, grids on devices

    scalar = True

    def __post_init__(self) -> None:
        self._check_time_sampling()

    # ----------------------------------------------------------------------------------------- builders
    @classmethod
    def vp(cls, num_steps: int, beta_min: float = 0.1, beta_max: float = 20.0, eps: float = VP_EPS,
           time_sampling: str = "grid") -> Schedule:
        """DDGAN's variance-preserving schedule: abar = exp(-(beta_max - beta_min) tau^2 / 2 - beta_min tau);
        grid tau_i = eps + (1 - eps) i / T."""
        T = cls._check_steps(num_steps)
        if not (beta_min >= 0 and beta_max >= beta_min and beta_max > 0):
            raise ValueError(f"vp schedule needs 0 <= beta_min <= beta_max and beta_max > 0, "
                             f"got beta_min={beta_min}, beta_max={beta_max}")
        if not 0 <= eps < 1:
            raise ValueError(f"vp schedule needs 0 <= eps < 1, got eps={eps}")
        times = eps + (1 - eps) * torch.arange(T + 1, dtype=torch.float64) / T
        return cls("vp", T, _vp_log_abar(beta_min, beta_max), times, time_sampling)

    @classmethod
    def geometric(cls, num_steps: int, beta_min: float = 0.1, beta_max: float = 0.9, eps: float = VP_EPS,
                  time_sampling: str = "grid") -> Schedule:
        """DDGAN's geometric schedule: 1 - abar = beta_min (beta_max / beta_min)^tau, on the vp grid.

        The variance runs from beta_min (tau = 0) to beta_max (tau = 1), so both must lie in (0, 1).
        """
        T = cls._check_steps(num_steps)
        if not (0 < beta_min < beta_max < 1):
            raise ValueError(f"geometric schedule: the variance beta_min (beta_max/beta_min)^tau must stay in "
                             f"[0, 1) and grow, which needs 0 < beta_min < beta_max < 1; "
                             f"got beta_min={beta_min}, beta_max={beta_max}")
        times = eps + (1 - eps) * torch.arange(T + 1, dtype=torch.float64) / T
        return cls("geometric", T, _geometric_log_abar(beta_min, beta_max), times, time_sampling)

    @classmethod
    def cosine(cls, num_steps: int, offset: float = COSINE_OFFSET, time_sampling: str = "continuous",
               t_min: float = 1e-4) -> Schedule:
        """SIDDM's continuous-time cosine schedule: abar = cos^2(((tau + 0.008) / 1.008) pi / 2), grid i / T."""
        T = cls._check_steps(num_steps)
        if offset <= 0:
            raise ValueError(f"cosine schedule needs offset > 0, got {offset}")
        if not 0 <= t_min < 1:
            raise ValueError(f"cosine schedule needs 0 <= t_min < 1, got t_min={t_min}")
        times = torch.arange(T + 1, dtype=torch.float64) / T
        return cls("cosine", T, _cosine_log_abar(offset), times, time_sampling, t_min)

    @classmethod
    def from_config(cls, config: dict) -> Schedule:
        """Build from a recipe's ``diffusion`` section: ``{schedule: vp|geometric|cosine, num_steps, ...}``."""
        config = dict(config)
        kind = config.pop("schedule", None)
        builders = {"vp": cls.vp, "geometric": cls.geometric, "cosine": cls.cosine}
        if kind not in builders:
            raise ValueError(f"diffusion.schedule must be one of {sorted(builders)}, got {kind!r}")
        return sections.call(builders[kind], config, "diffusion")

    # ------------------------------------------------------------------------------------ the schedule
    def log_alpha_bar(self, tau: Tensor) -> Tensor:
        """log abar(tau), computed in float64, for tau of any shape with values in [0, 1]."""
        tau = self._as_times(tau)
        return self.log_alpha_bar_fn(tau.to(torch.float64))

    def alpha_bar(self, tau: Tensor) -> Tensor:
        """abar(tau), same shape, dtype and device as ``tau`` (float tensors; ints become float64)."""
        tau = self._as_times(tau)
        return self.log_alpha_bar(tau).exp().to(tau.dtype)

    @property
    def betas(self) -> Tensor:
        """Per-step betas of the grid, [T] float64: beta_i = 1 - abar(times[i]) / abar(times[i-1])."""
        log_abar = self.log_alpha_bar(self.times)
        return -torch.expm1(log_abar[1:] - log_abar[:-1])

    # --------------------------------------------------------------------------- forward and posterior
    def q_sample(self, x0: Tensor, t: Tensor | float, noise: Tensor | None = None) -> Tensor:
        """x_t ~ q(x_t | x_0) = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise.  x0: [B, ...], t: [B]."""
        log_abar = self.log_alpha_bar(self._batch_times(t, x0, "t"))
        noise = self._noise(noise, x0)
        mean = self._expand(torch.exp(0.5 * log_abar), x0) * x0
        return mean + self._expand(torch.sqrt(-torch.expm1(log_abar)), x0) * noise

    def step_coefficients(self, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(sqrt(a), beta) of q(x_t | x_s) for float64 times [B] with s < t: a = abar_t / abar_s."""
        self._check_order(s, t)
        log_a = self.log_alpha_bar(t) - self.log_alpha_bar(s)
        return torch.exp(0.5 * log_a), -torch.expm1(log_a)

    def q_step(self, x_s: Tensor, s_time: Tensor | float, t: Tensor | float,
               noise: Tensor | None = None) -> Tensor:
        """x_t ~ q(x_t | x_s) = sqrt(a) x_s + sqrt(beta) noise for s_time < t.  x_s: [B, ...]."""
        s, t = self._batch_times(s_time, x_s, "s_time"), self._batch_times(t, x_s, "t")
        sqrt_a, beta = self.step_coefficients(s, t)
        noise = self._noise(noise, x_s)
        return self._expand(sqrt_a, x_s) * x_s + self._expand(beta.sqrt(), x_s) * noise

    def posterior_coefficients(self, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(c0, ct, var) of q(x_s | x_t, x_0) for float64 times [B] with s < t."""
        self._check_order(s, t)
        log_abar_s, log_abar_t = self.log_alpha_bar(s), self.log_alpha_bar(t)
        beta = -torch.expm1(log_abar_t - log_abar_s)
        one_minus_s, one_minus_t = -torch.expm1(log_abar_s), -torch.expm1(log_abar_t)
        c0 = torch.exp(0.5 * log_abar_s) * beta / one_minus_t
        ct = torch.exp(0.5 * (log_abar_t - log_abar_s)) * one_minus_s / one_minus_t
        return c0, ct, beta * one_minus_s / one_minus_t

    def posterior(self, x0: Tensor, x_t: Tensor, s_time: Tensor | float,
                  t: Tensor | float) -> tuple[Tensor, Tensor]:
        """(mean [B, ...], variance [B, 1, ..., 1]) of q(x_s | x_t, x_0) for s_time < t."""
        self._check_same_batch(x0=x0, x_t=x_t)
        s, t = self._batch_times(s_time, x_t, "s_time"), self._batch_times(t, x_t, "t")
        c0, ct, var = self.posterior_coefficients(s, t)
        mean = self._expand(c0, x0) * x0 + self._expand(ct, x_t) * x_t
        return mean, self._expand(var, x_t)

    def posterior_sample(self, x0: Tensor, x_t: Tensor, s_time: Tensor | float, t: Tensor | float,
                         noise: Tensor | None = None) -> Tensor:
        """x_s ~ q(x_s | x_t, x_0), differentiable in x0 and x_t (reparameterised)."""
        mean, var = self.posterior(x0, x_t, s_time, t)
        return mean + var.sqrt() * self._noise(noise, x_t)

    # ------------------------------------------------------------------- the forward-process interface
    def state_shape(self, data_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The state is x itself: ``data_shape``."""
        return tuple(data_shape)

    def data(self, u: Tensor) -> Tensor:
        """The state is x itself: ``u``."""
        return u

    def prior_sample(self, batch: int, data_shape: tuple[int, ...], device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> Tensor:
        """x_T ~ N(0, I), [batch, *data_shape] (the reverse chain's start; abar(1) is taken as 0)."""
        return torch.randn(batch, *data_shape, generator=generator, device=device, dtype=dtype)

    def draw_pair(self, x0: Tensor, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(x_s, x_t): x_s = :meth:`q_sample` (x0, s), then x_t = :meth:`q_step` (x_s, s, t)."""
        x_s = self.q_sample(x0, s)
        return x_s, self.q_step(x_s, s, t)

    def transition_mean(self, u_s: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """E[x_t | x_s] = sqrt(a) x_s for float64 times [B] with s < t."""
        return self._expand(self.step_coefficients(s, t)[0], u_s) * u_s

    def transition_error(self, u_t: Tensor, u_s: Tensor, s: Tensor, t: Tensor, whiten: bool = False) -> Tensor:
        """(x_t - sqrt(a) x_s)^2, divided by 2 beta when ``whiten`` (float64 times [B], s < t)."""
        sqrt_a, beta = self.step_coefficients(s, t)
        err = (u_t - self._expand(sqrt_a, u_s) * u_s).square()
        return err / (2 * self._expand(beta, u_s)) if whiten else err

    def posterior_mean(self, x0: Tensor, u_t: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """c0 x0 + ct x_t, the mean of :meth:`posterior`."""
        return self.posterior(x0, u_t, s, t)[0]
