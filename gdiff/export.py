"""Self-describing generators: a folder with ``config.json`` and ``model.safetensors``, diffusers/timm style.

    gen = load_generator("runs/cifar10_ddgan/generator")        # or a Hub repo id: "user/cifar10-ddgan"
    images = gen.sample(64, steps=4, seed=0)                    # [64, 3, 32, 32] in [-1, 1], float32, CPU
    gen.save_pretrained("shared/cifar10_ddgan")                 # a copy that needs nothing else
    gen.push_to_hub("user/cifar10-ddgan")                       # huggingface_hub (needs a login)

``config.json`` holds everything sampling needs and nothing of the training set: the generator's recipe
section (network type and arguments, parameterisation and transition), the diffusion section (the forward
process and its grid), the data shape in model space, the number of classes, and the data map back to data
space (gdiff/data/maps.py: pixels, affine, haar, or a transform that names its own decoder). The weights are
safetensors; nothing is unpickled. Saving and loading go through huggingface_hub's ``ModelHubMixin``, so a
local folder and a Hub repo id load the same way (``local_files_only=True`` for offline use).

Sampling: sample i belongs to chunk i // batch_size, and chunk k is drawn from its own seed (``seed``, k):
samples depend only on ``seed`` and ``batch_size``, not on how chunks are spread over processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import ModelCard, ModelHubMixin, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
from safetensors.torch import save_file
from torch import Tensor, nn

from gdiff import nets, processes
from gdiff.checkpoints import load_tensors
from gdiff.data import maps
from gdiff.parameterization import parameterization_of
from gdiff.sampling import ddim, sample

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
FORMAT = "gdiff.generator"
SAMPLERS = ("ancestral", "ddim")
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


@dataclass(frozen=True)
class GeneratorConfig:
    """What ``config.json`` holds (see the module docstring)."""

    generator: dict[str, Any]
    diffusion: dict[str, Any]
    data_shape: tuple[int, ...]
    num_classes: int
    data_map: dict[str, Any]
    format: str = FORMAT
    gdiff_version: str = field(default_factory=lambda: __import__("gdiff").__version__)

    def __post_init__(self) -> None:
        if self.format != FORMAT:
            raise ValueError(f"not a gdiff generator config (format {self.format!r}, expected {FORMAT!r})")
        object.__setattr__(self, "data_shape", tuple(int(d) for d in self.data_shape))
        for key in ("generator", "diffusion", "data_map"):
            if not isinstance(getattr(self, key), dict):
                raise ValueError(f"generator config: '{key}' must be a mapping, got {getattr(self, key)!r}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["data_shape"] = list(self.data_shape)
        return out

    @classmethod
    def from_dict(cls, raw: Any, source: str = "config") -> GeneratorConfig:
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: a generator config must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(known - set(raw) - {"format", "gdiff_version"})
        if missing or raw.get("format") != FORMAT:
            raise ValueError(f"{source}: not a gdiff generator config (format {raw.get('format')!r}, missing "
                             f"{missing})")
        return cls(**{k: v for k, v in raw.items() if k in known})


def chunk_seed(seed: int, index: int) -> int:
    """The seed of chunk ``index``: independent streams for different (seed, index) pairs."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0] >> 1)


class ExportedGenerator(ModelHubMixin, library_name="gdiff", tags=["diffusion-gan"]):
    """A generator with all it needs to sample: network, forward process, data map, shape and classes.

    ``G`` defaults to a freshly built (randomly initialised) network of ``config.generator``.
    """

    def __init__(self, config: GeneratorConfig, G: nn.Module | None = None, device: str | torch.device = "cpu",
                 root: Path | None = None, data_map: maps.DataMap | None = None) -> None:
        self.config = config
        self.device = torch.device(device)
        self.schedule = processes.from_config(config.diffusion)
        # the map already built (a training run's source: its autoencoder is not loaded twice), or the config's;
        # root: the folder of a loaded export
        self.data_map = data_map if data_map is not None else maps.from_config(config.data_map, root)
        G = G if G is not None else nets.build(processes.generator_section(config.generator, self.schedule,
                                                                           config.data_shape),
                                               config.data_shape, config.num_classes, "generator")
        parameterization_of(G).check(self.schedule)
        self.G = G.to(self.device).eval().requires_grad_(False)
        self.to_data_seconds = 0.0  # wall time spent mapping samples to data space (a latent map's decoder)

    # ------------------------------------------------------------------------------------ files
    def save_pretrained(self, save_directory: str | Path, *, repo_id: str | None = None, push_to_hub: bool = False,
                        **push_to_hub_kwargs: Any) -> str | None:
        """Write the folder (then push it to the Hub repo ``repo_id`` when asked). Unlike huggingface_hub's
        default, which deletes ``config.json`` before writing the weights, every file is replaced atomically: a
        run killed while exporting leaves the previous, complete folder. A model card is added once."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_pretrained(folder)
        if not (folder / "README.md").exists():
            self.generate_model_card().save(folder / "README.md")
        if push_to_hub:
            push_to_hub_kwargs.pop("config", None)  # the config is config.json, written above
            push_to_hub_kwargs.pop("model_card_kwargs", None)
            return self.push_to_hub(repo_id or folder.name, **push_to_hub_kwargs)
        return None

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """README.md of the folder: what the generator is and how to load it (Hub metadata in its header)."""
        c = self.config
        process = c.diffusion.get("process", c.diffusion.get("schedule", ""))
        text = (f"---\nlibrary_name: gdiff\ntags:\n- diffusion-gan\n- gdiff\n---\n\n"
                f"# A gdiff diffusion-GAN generator\n\n"
                f"- network: `{c.generator.get('type')}`, predicting "
                f"`{c.generator.get('parameterization', 'x0')}`\n"
                f"- forward process: `{process}`, {self.nfe()} network calls per sample\n"
                f"- samples: model-space shape {list(c.data_shape)}, mapped to data space by "
                f"`{c.data_map.get('type')}`; {c.num_classes or 'no'} classes\n\n"
                f"```python\nimport gdiff\ngen = gdiff.load_generator(\"<this folder or repo id>\")\n"
                f"samples = gen.sample(64, seed=0)\n```\n\nWritten by gdiff {c.gdiff_version}; `config.json` "
                f"describes it in full.\n")
        return ModelCard(text)

    def _save_pretrained(self, save_directory: Path) -> None:
        """The data map's files (a latent map's autoencoder), the weights, then the config, each written beside its
        destination and renamed over it."""
        config = {**self.config.to_dict(), "data_map": self.data_map.bundle(save_directory)}
        weights = {k: v.detach().cpu().contiguous() for k, v in self.G.state_dict().items()}
        _replace(save_directory / WEIGHTS_NAME, lambda tmp: save_file(weights, str(tmp), metadata={"format": "pt"}))
        text = json.dumps(config, indent=2) + "\n"
        _replace(save_directory / CONFIG_NAME, lambda tmp: tmp.write_text(text))

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: str | Path | None,
                         force_download: bool, local_files_only: bool, token: str | bool | None,
                         device: str | torch.device = "cpu", **_: Any) -> ExportedGenerator:
        folder = Path(model_id)
        if not folder.is_dir():  # a Hub repo: the whole folder (a latent generator's autoencoder included)
            folder = Path(snapshot_download(model_id, revision=revision, cache_dir=cache_dir,
                                            force_download=force_download, token=token,
                                            local_files_only=local_files_only))
        config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        config = GeneratorConfig.from_dict(_read_json(config_file), str(config_file))
        try:
            generator = cls(config, device=device, root=folder)
        except ValueError as err:  # a bad network, process or map in the config: name the file
            raise ValueError(f"{config_file}: {err}") from None
        weights = load_tensors(weights_file)
        try:
            generator.G.load_state_dict(weights, strict=True)
        except RuntimeError as err:  # names the missing, unexpected and mis-shaped keys (on one line)
            raise ValueError(f"{weights_file} does not fit the network of {config_file}: "
                             f"{' '.join(str(err).split())}") from None
        return generator

    # --------------------------------------------------------------------------------- sampling
    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def nfe(self, steps: int | None = None) -> int:
        """Network calls per sample: the number of steps (the forward process's T by default)."""
        return len(self.schedule.sampling_times(steps)) - 1

    def labels(self, num: int, labels: int | Sequence[int] | Tensor | None = None) -> Tensor | None:
        """Labels [num] (int64) for a class-conditional generator (None otherwise): one class, a list cycled over
        the samples, or by default every class in turn (sample i gets class i mod C)."""
        classes = self.num_classes
        if not classes:
            if labels is not None:
                raise ValueError("this generator is unconditional (num_classes 0): it takes no labels")
            return None
        base = torch.arange(classes) if labels is None else torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if len(base) == 0 or base.min() < 0 or base.max() >= classes:
            raise ValueError(f"labels must be class indices in [0, {classes}), got {base.tolist()[:10]}")
        return base.repeat((num + len(base) - 1) // len(base))[:num]

    @torch.no_grad()
    def sample_chunk(self, index: int, size: int, labels: Tensor | None = None, steps: int | None = None,
                     seed: int = 0, sampler: str = "ancestral", eta: float = 0.0) -> Tensor:
        """Chunk ``index`` of ``size`` samples [size, *data shape] in data space (float32, CPU), a pure function of
        its arguments: x_T and every latent and noise come from the generator seeded by (seed, index)."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        gen = torch.Generator(device=self.device).manual_seed(chunk_seed(seed, index))
        x_T = self.schedule.prior_sample(size, self.config.data_shape, self.device, generator=gen)
        y = None if labels is None else labels.to(self.device)
        if sampler == "ancestral":
            x0 = sample(self.G, self.schedule, x_T, y, steps=steps, generator=gen)
        else:
            x0 = ddim(self.G, self.schedule, x_T, y, steps=steps, eta=eta, generator=gen)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        out = self.data_map.to_data(x0.float()).float().cpu()
        self.to_data_seconds += time.perf_counter() - start
        return out

    def sample(self, num: int, labels: int | Sequence[int] | Tensor | None = None, steps: int | None = None,
               seed: int = 0, batch_size: int = 1000, sampler: str = "ancestral", eta: float = 0.0) -> Tensor:
        """``num`` samples [num, *data shape] in data space (float32, CPU), in chunks of ``batch_size``."""
        if num < 1 or batch_size < 1:
            raise ValueError(f"num and batch_size must be >= 1, got {num} and {batch_size}")
        y = self.labels(num, labels)
        return torch.cat([self.sample_chunk(k, min(batch_size, num - lo), None if y is None else y[lo:lo + batch_size],
                                            steps, seed, sampler, eta)
                          for k, lo in enumerate(range(0, num, batch_size))])


def load_generator(path: str | Path, device: str | torch.device = "cpu", **hub_kwargs: Any) -> ExportedGenerator:
    """An exported generator from a folder (a run directory stands for its ``generator/``) or a Hub repo id
    (``owner/name``; ``hub_kwargs`` such as ``revision`` or ``local_files_only`` go to huggingface_hub).

    Errors name the file: FileNotFoundError when there is no generator, ValueError when it is damaged.
    """
    folder = Path(path)
    if (folder / "generator" / CONFIG_NAME).is_file():
        folder = folder / "generator"  # a run directory: its EMA generator
    if folder.is_dir():
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} not found: is {folder} an exported gdiff generator (a run "
                                        f"directory, its generator/ folder, or a save_pretrained folder)?")
        config = _read_json(folder / CONFIG_NAME)  # before huggingface_hub parses it without naming the file
        if not isinstance(config, dict):
            raise ValueError(f"{folder / CONFIG_NAME}: a generator config must be a JSON object, got "
                             f"{type(config).__name__}")
    elif not REPO_ID.fullmatch(str(path)):
        raise FileNotFoundError(f"{path}: no such generator folder (and not a Hub repo id like owner/name)")
    elif folder.parent.is_dir():  # e.g. a mistyped runs/NAME: a local path, not a Hub repo (no network call)
        raise FileNotFoundError(f"{path}: no such generator folder (read as a local path because {folder.parent}/ "
                                f"exists here; to load the Hub repo {path}, run from another folder)")
    try:
        return ExportedGenerator.from_pretrained(str(folder), device=device, **hub_kwargs)
    except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        raise FileNotFoundError(f"{path}: no local generator folder, and the Hub repo could not be read: {err}"
                                ) from None


def _replace(path: Path, write: Any) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    write(tmp)
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read the generator config: {err}") from None
