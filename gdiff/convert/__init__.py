"""Import the published DDGAN and WaveDiff generators.

    python -m gdiff.convert ddgan|wavediff CHECKPOINT --recipe RECIPE --out DIR

See docs/pretrained.md. The reference code is never imported or copied: the conversion is gdiff's own name
mapping (ncsnpp_names.py), verified against outputs of the reference networks (tests/fixtures/convert/).
"""

from __future__ import annotations

from gdiff.convert import ddgan, wavediff
from gdiff.convert.family import Family, convert

FAMILIES: dict[str, Family] = {"ddgan": ddgan.FAMILY, "wavediff": wavediff.FAMILY}

__all__ = ["FAMILIES", "Family", "convert"]
