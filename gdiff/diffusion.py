"""The scalar noise schedules, under their first name: ``from gdiff.diffusion import Schedule`` keeps working.

The forward processes live in :mod:`gdiff.processes` (the interface, the scalar schedules and critically-damped
Langevin diffusion); build one from a recipe's ``diffusion`` section with :func:`gdiff.processes.from_config`.
"""

from gdiff.processes.base import TIME_SAMPLING
from gdiff.processes.scalar import COSINE_OFFSET, VP_EPS, Schedule

__all__ = ["COSINE_OFFSET", "TIME_SAMPLING", "VP_EPS", "Schedule"]
