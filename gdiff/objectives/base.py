"""How loss terms plug together.

A :class:`Term` is a small callable object (EDM-style) that holds its hyper-parameters and declares which
discriminator heads it reads. An :class:`Objective` is a weighted set of terms. It draws the diffusion pair,
makes the fake sample, runs each network pass ONCE with the union of the heads its terms need, and sums
``weight * loss`` over the terms. It never owns optimisers, devices or the loop.

One step, as data (x_s is "x_{t-1}", the less noisy element of the pair; x_s and x_t are states of the forward
process, gdiff/processes: x itself for the scalar schedules, the phase-space pair (x, v) for CLD):
    x0 -> (s, t) -> x_s ~ q(x_s | x0) -> x_t ~ q(x_t | x_s)          (``process.draw_pair``)
       -> x0' = G(x_t, t, z) -> x_s' ~ q(x_s | x_t, x0')            (``process.posterior_sample``)
(the fake follows G's parameterisation, gdiff/parameterization.py: x0, eps or x_prev, posterior or forward).
D step: fakes under no_grad, D on real x_s and on x_s' (detached).  G step: D on x_s' (D frozen by the caller).
Input-gradient terms (R1) read the real pass, whose input then requires grad, or, when ``grad_fraction`` < 1
asks for fewer samples, one more D pass on the first samples of the real batch: only that pass is differentiated
twice.
Times come from the process's own draws, so the steps use ``schedule.unchecked()`` (no host synchronisation).
The objectives only call the forward-process interface (gdiff/processes/base.py); what cannot work with a given
process (``Term.scalar_only``) is refused once, at build time, by :meth:`Objective.check_process`.
``d_input="x0"`` moves the discriminator to x0 space: D(x0, t) on the data and D(x0', t) on G's prediction
(the SIDDM authors' released 25-Gaussians code); every other term still reads the pair and x_s'.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from accelerate.utils import extract_model_from_parallel
from torch import Tensor, nn

from gdiff.parameterization import Parameterization, reverse_step
from gdiff.processes import ForwardProcess

D_INPUTS = ("x_prev", "x0")  # where the discriminator looks: the posterior sample x_{t-1}, or x0


@dataclass
class Pair:
    """A training pair of the forward process: data x0 [B, ...], states x_s, x_t [B, *state_shape], times [B]
    (float64)."""

    x0: Tensor
    s: Tensor
    t: Tensor
    x_s: Tensor
    x_t: Tensor
    labels: Tensor | None = None

    @classmethod
    def draw(cls, schedule: ForwardProcess, x0: Tensor, labels: Tensor | None = None) -> Pair:
        s, t = schedule.sample_times(x0.shape[0], device=x0.device)
        x_s, x_t = schedule.draw_pair(x0, s, t)
        return cls(x0, s, t, x_s, x_t, labels)

    def head(self, n: int) -> Pair:
        """The first ``n`` samples of the pair."""
        return Pair(self.x0[:n], self.s[:n], self.t[:n], self.x_s[:n], self.x_t[:n],
                    None if self.labels is None else self.labels[:n])


@dataclass
class StepData:
    """What the terms of one D or G step read: the pair, the fake, and D's outputs (dicts of heads).

    ``fake_x0`` is None when the generator predicts x_{t-1} directly (``parameterization: x_prev``).
    ``grad_pass``: (real input [n, ...] that requires grad, D's outputs on it) of the separate sub-batch pass
    that input-gradient terms read when it is smaller than the batch; None when they read ``real`` itself.
    """

    schedule: ForwardProcess
    pair: Pair
    fake_x0: Tensor | None
    fake_x_s: Tensor
    step: int = 0
    real: dict[str, Tensor] = field(default_factory=dict)
    fake: dict[str, Tensor] = field(default_factory=dict)
    grad_pass: tuple[Tensor, dict[str, Tensor]] | None = None


@dataclass
class Losses:
    """``total``: the scalar to back-propagate; ``parts``: detached, unweighted scalars for logging."""

    total: Tensor
    parts: dict[str, Tensor]


class Term:
    """One loss term. Subclasses set the class attributes and override the phase(s) they take part in.

    ``d_real_heads`` / ``d_fake_heads`` / ``g_fake_heads``: the discriminator heads the term reads on real
    x_s (D step), on the detached fake (D step) and on the fake (G step); ``None`` means "no pass needed",
    an empty set means "logits only". ``weight`` scales the G-step loss and ``d_weight`` the D-step loss.
    ``grad_fraction`` (terms that override :meth:`real_needs_grad`): the fraction of the real batch on which
    the input gradient is taken; below 1 (and fewer samples than the batch) the objective gives the term a
    separate sub-batch pass.
    """

    name: str = "term"
    d_real_heads: frozenset[str] | None = None
    d_fake_heads: frozenset[str] | None = None
    g_fake_heads: frozenset[str] | None = None
    pairwise: bool | None = None  # True: D must see (x_s, x_t); False: D must not; None: no opinion
    grad_fraction: float = 1.0
    scalar_only: str | None = None  # why the term needs a scalar process (alpha_bar), or None: any process

    def __init__(self, weight: float = 1.0, d_weight: float | None = None) -> None:
        self.weight = float(weight)
        self.d_weight = float(weight if d_weight is None else d_weight)

    def real_needs_grad(self, step: int) -> bool:
        """Whether the D step must differentiate w.r.t. the real input (R1)."""
        return False

    def discriminator_loss(self, data: StepData) -> dict[str, Tensor]:
        return {}

    def generator_loss(self, data: StepData) -> dict[str, Tensor]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight}, d_weight={self.d_weight})"


def _union(sets: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    present = [s for s in sets if s is not None]
    return frozenset().union(*present) if present else None


class Objective:
    """A weighted set of terms; see the module docstring for one step as data.

    ``d_input``: where D looks, ``"x_prev"`` (the papers) or ``"x0"``. ``transition``: the generator
    transition the objective is defined for (``"forward"`` for UFOGen), or None for any.
    """

    scalar_only: str | None = None  # why the objective itself needs a scalar process, or None

    def __init__(self, terms: Iterable[Term], name: str = "objective", d_input: str = "x_prev",
                 transition: str | None = None) -> None:
        self.terms = [term for term in terms if term.weight != 0 or term.d_weight != 0]
        self.name = name
        self.d_input, self.transition = d_input, transition
        self._check_d_input()
        opinions = {term.pairwise for term in self.terms} - {None}
        if len(opinions) > 1:
            raise ValueError(f"objective '{name}' mixes terms that need a pairwise discriminator with terms "
                             f"that need a marginal one: {self.terms}")
        self.pairwise = opinions.pop() if opinions else False
        d_terms = [term for term in self.terms if term.d_weight != 0]
        g_terms = [term for term in self.terms if term.weight != 0]
        self._d_real = _union(t.d_real_heads for t in d_terms)
        self._d_fake = _union(t.d_fake_heads for t in d_terms)
        self._g_fake = _union(t.g_fake_heads for t in g_terms)
        fractions = {t.grad_fraction for t in d_terms if type(t).real_needs_grad is not Term.real_needs_grad}
        if len(fractions) > 1:
            raise ValueError(f"objective '{name}': its input-gradient terms ask for different sub-batch fractions "
                             f"{sorted(fractions)}; give them one (batch_fraction; r1_batch_fraction in the presets)")
        self.grad_fraction = fractions.pop() if fractions else 1.0

    def _check_d_input(self) -> None:
        if self.d_input not in D_INPUTS:
            raise ValueError(f"objective.d_input must be one of {D_INPUTS}, got {self.d_input!r}")
        if self.d_input == "x_prev":
            return
        reads_heads = [t for t in self.terms if (_union([t.d_real_heads, t.d_fake_heads, t.g_fake_heads])
                                                 or frozenset()) - {"logits"}]
        if reads_heads:
            raise ValueError(f"objective '{self.name}': d_input x0 shows D the clean x0, but {reads_heads} read "
                             f"discriminator heads defined on x_{{t-1}} (regression of x_t, denoising to x0); "
                             f"drop them (e.g. siddm entropy: false, denoise_weight: 0) or use d_input x_prev")
        if any(type(t).real_needs_grad is not Term.real_needs_grad for t in self.terms):
            raise NotImplementedError(f"objective '{self.name}': R1 takes its gradient w.r.t. the real x_{{t-1}}; "
                                      f"with d_input x0 it would need the real x0 instead, which R1Penalty does "
                                      f"not read yet: set r1_gamma: 0")

    @property
    def trains_discriminator(self) -> bool:
        """False when no term has a D-step loss (e.g. AFD cross-entropy alone): the caller skips the D step."""
        return self._d_real is not None or self._d_fake is not None

    def double_backward(self, step: int) -> bool:
        """Whether the D step of ``step`` differentiates through D's input gradient (R1): the pass that is
        differentiated twice runs on ``D_eager`` (torch.compile does not support double backward)."""
        return any(term.real_needs_grad(step) for term in self.terms if term.d_weight != 0)

    @property
    def reads_discriminator(self) -> bool:
        """False when no term reads D in either step (a plain denoiser): the caller may build no D at all."""
        return self.trains_discriminator or self._g_fake is not None

    @property
    def required_heads(self) -> frozenset[str]:
        return _union([self._d_real, self._d_fake, self._g_fake, frozenset()]) - {"logits"}

    def check(self, D: nn.Module) -> None:
        """Raise a ValueError unless D sees exactly what this objective needs (pairing and heads)."""
        pairwise = getattr(D, "pairwise", None)
        if self.trains_discriminator and pairwise is not None and pairwise != self.pairwise:
            need = "pairwise (sees x_t)" if self.pairwise else "marginal (never sees x_t)"
            raise ValueError(f"objective '{self.name}' needs a {need} discriminator; set "
                             f"discriminator.pairwise: {str(self.pairwise).lower()}")
        offered = set(getattr(D, "heads", frozenset()))
        missing = self.required_heads - offered
        if missing:
            raise ValueError(f"objective '{self.name}' needs discriminator heads {sorted(missing)}, which "
                             f"{type(D).__name__} does not offer (it has {sorted(offered)}); "
                             f"set discriminator.heads: {sorted(self.required_heads)}")
        unused = offered - self.required_heads
        if unused:  # parameters without gradients: wasted work, and DDP would need find_unused_parameters
            raise ValueError(f"discriminator heads {sorted(unused)} are never used by objective '{self.name}'; "
                             f"set discriminator.heads: {sorted(self.required_heads)}")

    def check_generator(self, param: Parameterization) -> None:
        """Raise a ValueError unless a generator with parameterisation ``param`` suits this objective (called
        once, at build time: the steps check nothing)."""
        if self.transition is not None and param.transition != self.transition:
            raise ValueError(f"objective '{self.name}' draws its fake x_{{t-1}} by the {self.transition} "
                             f"transition: set generator.transition: {self.transition} (the sampler follows it)")
        if param.predicts == "x_prev" and self.d_input == "x0":
            raise ValueError(f"objective '{self.name}' (d_input x0) needs an x0 prediction, which "
                             f"generator.parameterization x_prev does not give: use x0 or eps")

    def check_process(self, process: ForwardProcess) -> None:
        """Raise a ValueError unless every part of this objective works with ``process`` (called once, at build
        time): on a phase-space process (CLD) the terms that read a scalar alpha_bar, the forward transition and
        a discriminator on x0 are refused."""
        if process.scalar:
            return
        reasons = [f"objective '{self.name}': {self.scalar_only}"] if self.scalar_only else []
        reasons += [f"{term!r}: {term.scalar_only}" for term in self.terms if term.scalar_only]
        if self.transition == "forward":
            reasons.append(f"objective '{self.name}' draws its fake by the forward transition q(x_s | x0'), which "
                           f"has no phase-space form (x_t would not enter the fake)")
        if self.d_input == "x0":
            reasons.append(f"objective '{self.name}': d_input x0 judges data-space x0 beside phase-space states; "
                           f"use d_input x_prev")
        if reasons:
            raise ValueError(f"diffusion.process {process.name} has no scalar signal fraction alpha_bar: "
                             + "; ".join(reasons))

    # ----------------------------------------------------------------------------------------- passes
    def _run_d(self, D: nn.Module, x: Tensor, pair: Pair, heads: frozenset[str]) -> dict[str, Tensor]:
        x_t = pair.x_t if self.pairwise else None
        t = pair.t.to(x.dtype)
        if heads - {"logits"}:
            return D(x, t, x_t, pair.labels, heads=tuple(sorted(heads - {"logits"})))
        return {"logits": D(x, t, x_t, pair.labels)}

    def grad_batch_size(self, D: nn.Module, batch: int) -> int:
        """Samples in the input-gradient pass: ceil(grad_fraction x batch), rounded up to whole groups of D's
        minibatch-stddev statistic (``D.stddev_group``) so that its groups look like the full batch's."""
        group = max(1, min(getattr(extract_model_from_parallel(D), "stddev_group", 1) or 1, batch))
        wanted = math.ceil(round(self.grad_fraction * batch, 6))  # round: 0.1 x 30 is 3, not 4
        return min(batch, -(-wanted // group) * group)

    def _grad_pass(self, D: nn.Module, real_input: Tensor, pair: Pair) -> tuple[Tensor, dict[str, Tensor]]:
        """D (logits) on the first ``grad_batch_size`` real inputs, detached and requiring grad."""
        n = self.grad_batch_size(D, real_input.shape[0])
        x = real_input[:n].detach().requires_grad_(True)
        return x, self._run_d(D, x, pair.head(n), frozenset())

    def _fake(self, G: nn.Module, schedule: ForwardProcess, pair: Pair) -> tuple[Tensor | None, Tensor]:
        """(x0' or None, x_s'): one reverse step of G from the real x_t (gdiff/parameterization.py)."""
        return reverse_step(G, schedule, pair.x_t, pair.s, pair.t, pair.labels)

    def _d_inputs(self, pair: Pair, data: StepData) -> tuple[Tensor, Tensor]:
        """(real, fake) inputs of D: (x_s, x_s') or, with ``d_input="x0"``, (x0, x0')."""
        if self.d_input == "x0":
            return pair.x0, data.fake_x0
        return pair.x_s, data.fake_x_s

    @staticmethod
    def _sum(terms: list[tuple[float, dict[str, Tensor]]], prefix: str) -> Losses:
        total, parts = None, {}
        for weight, losses in terms:
            for key, value in losses.items():
                total = weight * value if total is None else total + weight * value
                parts[f"{prefix}/{key}"] = value.detach()
        if total is None:
            raise RuntimeError(f"no term of this objective contributes to the {prefix} step")
        parts[f"{prefix}/total"] = total.detach()
        return Losses(total, parts)

    # ------------------------------------------------------------------------------------------ steps
    def discriminator_loss(self, G: nn.Module, D: nn.Module, schedule: ForwardProcess, x0: Tensor,
                           labels: Tensor | None = None, step: int = 0, D_eager: nn.Module | None = None) -> Losses:
        """D-step loss. Fakes are made under no_grad: no generator graph is built or back-propagated.

        ``D_eager``: the same discriminator without torch.compile (which has no double backward), used for the
        pass that an input-gradient term differentiates twice; default ``D``.
        """
        schedule = schedule.unchecked()
        pair = Pair.draw(schedule, x0, labels)
        with torch.no_grad():
            fake_x0, fake_x_s = self._fake(G, schedule, pair)
        data = StepData(schedule, pair, fake_x0, fake_x_s, step)
        d_terms = [term for term in self.terms if term.d_weight != 0]
        real_input, fake_input = self._d_inputs(pair, data)
        twice = self.double_backward(step)  # then the real pass itself is differentiated twice, unless the
        whole = twice and self.grad_batch_size(D, x0.shape[0]) == x0.shape[0]  # sub-batch is smaller than it
        D_eager = D if D_eager is None else D_eager
        if self._d_real is not None:
            if whole:
                real_input.requires_grad_(True)
            data.real = self._run_d(D_eager if whole else D, real_input, pair, self._d_real)
        if twice and not whole:
            data.grad_pass = self._grad_pass(D_eager, real_input, pair)
        if self._d_fake is not None:
            data.fake = self._run_d(D, fake_input, pair, self._d_fake)
        losses = self._sum([(term.d_weight, term.discriminator_loss(data)) for term in d_terms], "d")
        for side in ("real", "fake"):
            if "logits" in getattr(data, side):
                losses.parts[f"d/logit_{side}"] = getattr(data, side)["logits"].detach().mean()
        return losses

    def generator_loss(self, G: nn.Module, D: nn.Module, schedule: ForwardProcess, x0: Tensor,
                       labels: Tensor | None = None, step: int = 0) -> Losses:
        """G-step loss on a freshly drawn pair and latent. The caller freezes D's parameters."""
        schedule = schedule.unchecked()
        pair = Pair.draw(schedule, x0, labels)
        fake_x0, fake_x_s = self._fake(G, schedule, pair)
        data = StepData(schedule, pair, fake_x0, fake_x_s, step)
        if self._g_fake is not None:
            data.fake = self._run_d(D, self._d_inputs(pair, data)[1], pair, self._g_fake)
        g_terms = [term for term in self.terms if term.weight != 0]
        return self._sum([(term.weight, term.generator_loss(data)) for term in g_terms], "g")

    def __repr__(self) -> str:
        terms = ",\n  ".join(repr(term) for term in self.terms)
        where = "" if self.d_input == "x_prev" else f", d_input={self.d_input!r}"
        where += "" if self.transition is None else f", transition={self.transition!r}"
        return f"Objective('{self.name}', pairwise={self.pairwise}{where}, terms=[\n  {terms}])"
