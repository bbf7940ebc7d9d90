"""Feature-extractor weights, read without unpickling code, and the torch-fidelity extractors built from them.

torch-fidelity reads weights with ``torch.load(weights_only=False)``: a weights file handed to it, or a file
planted in the torch hub cache (``$TORCH_HOME/hub/checkpoints``, where its downloaders look first), runs any
code its pickle names. gdiff therefore reads every weights file itself, with

* ``safetensors`` for ``*.safetensors`` files (no code at all), or
* ``torch.load(weights_only=True)`` for PyTorch files (PyTorch's restricted unpickler: tensors, containers and
  numbers only; anything else is refused),

and hands torch-fidelity an in-memory copy of the tensors it read (``torch.save`` of a plain dict of tensors),
never the user's file. The default weights (no file given) are the files torch-fidelity and torchvision
download, fetched by gdiff into the same hub cache and accepted only when the SHA-256 of the file starts with
the digest its name carries (PyTorch hub's convention, ``-<first 8 hex digits>.pth``):

    inception-v3-compat  weights-inception-2015-12-05-6726825d.pth  (torch-fidelity v0.2.0 release, 96 MB)
    vgg16                vgg16-397923af.pth                         (torchvision IMAGENET1K_V1, 528 MB)

torch-fidelity's other built-in extractors (CLIP, DINOv2) load code or pickles from the internet and are
refused; extractors a user registers (``package.module:Class``) are the user's own code and read their own file.
"""

from __future__ import annotations

import hashlib
import io
import re
import urllib.error
from pathlib import Path

import torch
from torch import Tensor
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

INCEPTION, VGG16 = "inception-v3-compat", "vgg16"
WEIGHTS_FLAGS = {INCEPTION: "--inception-weights", VGG16: "--vgg16-weights"}


def default_urls() -> dict[str, str]:
    """Download address of the default weights of each extractor gdiff builds itself."""
    import torchvision

    return {INCEPTION: URL_INCEPTION_V3, VGG16: torchvision.models.VGG16_Weights.IMAGENET1K_V1.url}


class MissingWeightsError(RuntimeError):
    """A feature extractor's weights are neither given, cached, nor downloadable (offline machine)."""


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict(path: str | Path, what: str = "weights") -> dict[str, Tensor]:
    """The tensors of a weights file (name -> tensor, on the CPU), read without unpickling code.

    ``*.safetensors`` through safetensors, any other file through ``torch.load(weights_only=True)``. ``what``
    (a flag or recipe key) starts the error message: FileNotFoundError when the file is absent, ValueError when
    it is not a plain name -> tensor file (a pickle naming code, a truncated or foreign file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: weights file {path} not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- any failure of an untrusted file is reported as that file's error
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        reason = lines[1] if lines[0].startswith("Weights only load failed") and len(lines) > 1 else lines[0]
        raise ValueError(f"{what}: {path} is not a plain weights file (safetensors, or a PyTorch file of tensors "
                         f"only); refused without running it: {reason}") from err
    if not (isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items())):
        raise ValueError(f"{what}: {path} does not hold a flat dict of name -> tensor (a state dict)")
    return state


def default_weights_file(name: str, verbose: bool = False) -> Path:
    """The hub-cache file of ``name``'s default weights, downloaded when absent; its SHA-256 must start with the
    digest in its file name (else ValueError naming the file: a damaged or substituted download)."""
    url = default_urls()[name]
    file_name = url.rsplit("/", 1)[-1]
    prefix = weights_digest(name, None)
    path = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path), hash_prefix=prefix, progress=verbose)
        except urllib.error.URLError as err:
            raise MissingWeightsError(
                f"the {name} feature extractor's weights {file_name} are not in the torch hub cache "
                f"({path.parent}) and could not be downloaded ({err}); on an offline machine pass "
                f"{WEIGHTS_FLAGS[name]} PATH (the file copied from a machine with internet; see docs/evaluation.md)"
            ) from err
    digest = sha256_file(path)
    if not digest.startswith(prefix):
        raise ValueError(f"{path}: SHA-256 {digest[:16]}... does not start with {prefix}, the digest in its name: "
                         f"a damaged or substituted download; delete it (gdiff downloads it again) or pass "
                         f"{WEIGHTS_FLAGS[name]} PATH")
    return path


def weights_digest(name: str, weights: str | Path | None) -> str:
    """What identifies the weights in cache keys: 12 hex digits of a given file's SHA-256, the digest in the
    default file's name, or ``none`` (an extractor without a weights file)."""
    if weights is not None:
        return sha256_file(weights)[:12]
    if name in WEIGHTS_FLAGS:
        return re.search(r"-([0-9a-f]{8,})\.pth$", default_urls()[name]).group(1)
    return "none"


def weights_state(name: str, weights: str | Path | None, verbose: bool = False) -> dict[str, Tensor]:
    """The state dict of built-in extractor ``name``: the given file, or the checked default download."""
    if weights is not None:
        return load_state_dict(weights, WEIGHTS_FLAGS.get(name, "feature extractor weights"))
    path = default_weights_file(name, verbose)
    return load_state_dict(path, f"{name} default weights")


def check_extractor(name: str) -> None:
    """ValueError unless gdiff can build ``name`` without unpickling code (see the module docstring)."""
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        raise ValueError(f"feature extractor {name!r} is not registered with torch-fidelity")
    cls = FEATURE_EXTRACTORS_REGISTRY[name]
    if name not in WEIGHTS_FLAGS and cls.__module__.startswith("torch_fidelity."):
        raise ValueError(f"feature extractor {name!r}: torch-fidelity loads its weights by unpickling downloads "
                         f"(code could run); gdiff supports {sorted(WEIGHTS_FLAGS)}, 'digits' and extractors given "
                         f"as package.module:Class")


def build_extractor(name: str, features: list[str], weights: str | Path | None, device: str = "cpu",
                    verbose: bool = False) -> FeatureExtractorBase:
    """torch-fidelity's extractor ``name`` giving ``features``, in eval mode on ``device``.

    Inception-v3 and VGG16 get the tensors :func:`weights_state` read (torch-fidelity unpickles only gdiff's own
    in-memory copy of them); a registered ``package.module:Class`` gets ``weights`` as its path.
    """
    check_extractor(name)
    cls = FEATURE_EXTRACTORS_REGISTRY[name]
    if name not in WEIGHTS_FLAGS:
        extractor = cls(name, features, feature_extractor_weights_path=None if weights is None else str(weights),
                        verbose=verbose)
    else:
        buffer = io.BytesIO()
        torch.save(weights_state(name, weights, verbose), buffer)
        buffer.seek(0)
        try:
            extractor = cls(name, features, feature_extractor_weights_path=buffer, verbose=verbose)
        except RuntimeError as err:  # load_state_dict: wrong keys or shapes
            source = weights if weights is not None else "the default weights"
            raise ValueError(f"{WEIGHTS_FLAGS[name]}: {source} are not {name} weights: "
                             f"{str(err).splitlines()[0]}") from err
    return extractor.requires_grad_(False).eval().to(device)
