"""Read a reference generator checkpoint as a plain state dict, without running any code from the file.

The DDGAN and WaveDiff training scripts save ``netG_<epoch>.pth`` with ``torch.save(netG.state_dict())`` from a
DDP-wrapped network: a flat ``{name: tensor}`` mapping whose names start with ``module.``. It is read with
``torch.load(weights_only=True)``, which rebuilds tensors and plain containers only and refuses any other
pickled object before constructing it, so a file that carries code is rejected and runs nothing. A
``.safetensors`` file holding the same names is read with safetensors.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

DDP_PREFIX = "module."


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """``{name: tensor}`` of the checkpoint at ``path`` with the DDP ``module.`` prefix removed.

    FileNotFoundError when the file is missing; ValueError naming the file when it is not a readable
    checkpoint, needs more than tensors to load (anything else pickled), or holds something else than a flat
    mapping of names to tensors (e.g. the training script's ``content.pth``, whose generator is not the EMA one).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{path}: not a readable safetensors file: {err}") from None
    else:
        try:
            with warnings.catch_warnings():  # a plain pickle (protocol 4) draws a UserWarning before its refusal
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise ValueError(f"{path}: refused: loading it needs more than tensors (torch.load with "
                             f"weights_only=True rejected it, so nothing in it ran): {_first_line(err)}") from None
        except (RuntimeError, EOFError, OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable PyTorch checkpoint (damaged or truncated?): "
                             f"{_first_line(err)}") from None
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: expected a generator state dict (a mapping of parameter names to tensors), "
                         f"got {type(state).__name__}")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        hint = " (the training script's content.pth; convert netG_<epoch>.pth, the EMA generator)" \
            if "netG_dict" in state else ""
        raise ValueError(f"{path}: expected a flat generator state dict of tensors{hint}; entries that are not "
                         f"tensors: {[str(k) for k in bad[:5]]}")
    if all(k.startswith(DDP_PREFIX) for k in state):
        state = {k[len(DDP_PREFIX):]: v for k, v in state.items()}
    return state


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
