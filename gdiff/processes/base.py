"""The forward-process interface: everything the objectives and the samplers ask of a diffusion.

A forward process maps data x0 [B, *data_shape] to a STATE u [B, *state_shape] at times tau in [0, 1]. For the
scalar schedules (gdiff/processes/scalar.py) the state is x itself; for critically-damped Langevin diffusion
(gdiff/processes/cld.py) it is the phase-space pair u = (x, v), concatenated along dim 1. The operations:

* ``draw_pair(x0, s, t)``            (u_s, u_t): u_s ~ q(u_s | x0), then u_t ~ q(u_t | u_s)
* ``transition_mean(u_s, s, t)``     E[u_t | u_s];  ``transition_error``: its squared residual, optionally whitened
* ``posterior_mean`` / ``posterior_sample(x0, u_t, s, t)``: q(u_s | u_t, x0)
* ``prior_sample(batch, data_shape)``: u_T at the top of the reverse chain;  ``data(u)``: the x part of a state
* ``sample_times`` / ``sampling_times``: the training draws of (s, t) and the grid the reverse chain visits

Times are per-sample float64 tensors [B]; coefficients are computed in float64 and cast to the dtype of the
state. This module holds the time grid and its checks, shared by every process: by default every call checks
its times (in [0, 1], no NaN, s < t), which reads tensors on the host; :meth:`ForwardProcess.unchecked` gives
the same process without these value checks for callers whose times come from the process's own draws.
"""

from __future__ import annotations

import dataclasses
import numbers
from abc import ABC, abstractmethod

import torch
from torch import Tensor

TIME_SAMPLING = ("grid", "continuous")


class ForwardProcess(ABC):
    """Base of the forward processes (frozen dataclasses with the fields ``name``, ``num_steps``, ``times``,
    ``time_sampling``, ``t_min``, ``validate`` and ``_memo``).

    ``time_sampling`` says how training draws a pair (s, t): ``"grid"`` draws a grid step uniformly (DDGAN),
    ``"continuous"`` draws t ~ U(t_min, 1] and s = max(t - 1/T, 0) (SIDDM).
    ``scalar`` is True when the process has a scalar signal fraction ``alpha_bar`` (its state is x itself).
    """

    name: str
    num_steps: int
    times: Tensor
    time_sampling: str
    t_min: float
    validate: bool
    _memo: dict
    scalar: bool = False

    def _check_time_sampling(self) -> None:
        if self.time_sampling not in TIME_SAMPLING:
            raise ValueError(f"time_sampling must be one of {TIME_SAMPLING}, got {self.time_sampling!r}")

    def unchecked(self) -> ForwardProcess:
        """This process with ``validate=False``: bit-identical results on valid times, no host reads of
        tensors (so no GPU synchronisation), and no error on invalid times. Built once, then reused."""
        if not self.validate:
            return self
        if "unchecked" not in self._memo:
            self._memo["unchecked"] = dataclasses.replace(self, validate=False)
        return self._memo["unchecked"]

    def _times_on(self, device: torch.device) -> Tensor:
        """The grid ``times`` on ``device``, copied there once."""
        key = ("times", str(device))
        if key not in self._memo:
            self._memo[key] = self.times.to(device)
        return self._memo[key]

    @staticmethod
    def _check_steps(num_steps: int) -> int:
        if not isinstance(num_steps, numbers.Integral) or isinstance(num_steps, bool) or num_steps < 1:
            raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
        return int(num_steps)

    # ------------------------------------------------------------------------------ state interface
    @abstractmethod
    def state_shape(self, data_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one state for data of shape ``data_shape`` (without the batch dimension)."""

    @abstractmethod
    def data(self, u: Tensor) -> Tensor:
        """The data part x [B, *data_shape] of states u [B, *state_shape]."""

    @abstractmethod
    def prior_sample(self, batch: int, data_shape: tuple[int, ...], device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> Tensor:
        """u_T ~ the prior, [batch, *state_shape(data_shape)]: where the reverse chain starts."""

    @abstractmethod
    def draw_pair(self, x0: Tensor, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(u_s, u_t) for data x0 [B, ...] and times s < t [B]: u_s ~ q(u_s | x0), u_t ~ q(u_t | u_s)."""

    @abstractmethod
    def transition_mean(self, u_s: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """E[u_t | u_s] [B, *state_shape] for s < t."""

    @abstractmethod
    def transition_error(self, u_t: Tensor, u_s: Tensor, s: Tensor, t: Tensor, whiten: bool = False) -> Tensor:
        """Elementwise squared residual r^2 of r = u_t - E[u_t | u_s], [B, *state_shape]; ``whiten=True``: the
        elementwise terms of (1/2) r^T Sigma^-1 r with Sigma = Cov[u_t | u_s] (their sum is the Gaussian
        negative log-likelihood up to a constant)."""

    @abstractmethod
    def posterior_mean(self, x0: Tensor, u_t: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """E[u_s | u_t, x0] [B, *state_shape] for s < t; x0 [B, *data_shape]."""

    @abstractmethod
    def posterior_sample(self, x0: Tensor, u_t: Tensor, s: Tensor | float, t: Tensor | float,
                         noise: Tensor | None = None) -> Tensor:
        """u_s ~ q(u_s | u_t, x0), reparameterised by ``noise`` [B, *state_shape] (drawn when None)."""

    # --------------------------------------------------------------------------------- time handling
    def _as_times(self, tau: Tensor | float) -> Tensor:
        tau = tau if isinstance(tau, Tensor) else torch.as_tensor(tau, dtype=torch.float64)
        if not tau.is_floating_point():
            tau = tau.to(torch.float64)
        if self.validate and bool(torch.isnan(tau).any() | (tau < 0).any() | (tau > 1).any()):
            raise ValueError(f"times must lie in [0, 1]; got values in [{tau.min().item()}, {tau.max().item()}]")
        return tau

    def _batch_times(self, tau: Tensor | float, x: Tensor, name: str) -> Tensor:
        """Times as a float64 tensor [B] matching the batch of x (a scalar is broadcast)."""
        tau = self._as_times(tau).to(device=x.device)
        if tau.ndim == 0:
            tau = tau.expand(x.shape[0])
        if tau.ndim != 1 or tau.shape[0] != x.shape[0]:
            raise ValueError(f"{name} must be a scalar or have shape [{x.shape[0]}] (the batch of x); "
                             f"got shape {tuple(tau.shape)}")
        return tau.to(torch.float64)

    def _check_order(self, s: Tensor, t: Tensor) -> None:
        if self.validate and bool((s >= t).any()):
            bad = int(torch.nonzero(s >= t)[0, 0])
            raise ValueError(f"need s_time < t elementwise; got s_time={s[bad].item()} >= t={t[bad].item()} "
                             f"at index {bad}")

    @staticmethod
    def _check_same_batch(**tensors: Tensor) -> None:
        sizes = {name: x.shape[0] for name, x in tensors.items()}
        shapes = {name: tuple(x.shape) for name, x in tensors.items()}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"inputs must have the same shape; got {shapes}" if len(set(sizes.values())) == 1
                             else f"mismatched batch sizes: {sizes}")

    @staticmethod
    def _expand(coef: Tensor, x: Tensor) -> Tensor:
        """[B] float64 -> [B, 1, ..., 1] in x's dtype."""
        return coef.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))

    @staticmethod
    def _noise(noise: Tensor | None, x: Tensor) -> Tensor:
        if noise is None:
            return torch.randn_like(x)
        if noise.shape != x.shape:
            raise ValueError(f"noise must have the shape of x {tuple(x.shape)}, got {tuple(noise.shape)}")
        return noise.to(x.dtype)

    # ------------------------------------------------------------------------------- training times
    def sample_times(self, batch: int, device: torch.device | str = "cpu",
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw (s, t), each float64 [batch], for training.

        ``grid``: i ~ U{1..T}, s = times[i-1], t = times[i].  ``continuous``: t ~ U(t_min, 1],
        s = max(t - 1/T, 0) (SIDDM). The draws are made on ``generator``'s device if one is given, else on
        ``device`` (no copy from the host, so no GPU synchronisation).
        """
        device = torch.device(device)
        where = generator.device if generator is not None else device
        if self.time_sampling == "grid":
            i = torch.randint(1, self.num_steps + 1, (batch,), generator=generator, device=where)
            times = self._times_on(where)
            s, t = times[i - 1], times[i]
        else:
            u = torch.rand(batch, dtype=torch.float64, generator=generator, device=where)
            t = 1.0 - (1.0 - self.t_min) * u  # in (t_min, 1]
            s = (t - 1.0 / self.num_steps).clamp(min=0.0)
        to_host = device.type == "cpu"  # a copy back to the host must block before its values are read
        return s.to(device, non_blocking=not to_host), t.to(device, non_blocking=not to_host)

    def sampling_times(self, steps: int | None = None) -> Tensor:
        """The times the reverse chain visits, [steps + 1] float64, from times[0] to times[T].

        ``steps`` other than T is allowed only for continuous-time processes (an even grid of ``steps``).
        """
        if steps is None or steps == self.num_steps:
            return self.times
        self._check_steps(steps)
        if self.time_sampling != "continuous":
            raise ValueError(f"this {self.name} process was trained on its grid of {self.num_steps} steps; "
                             f"sampling with {steps} steps needs time_sampling continuous")
        first, last = self.times[0], self.times[-1]
        return first + (last - first) * torch.arange(steps + 1, dtype=torch.float64) / steps
