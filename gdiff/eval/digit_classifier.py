"""A digit classifier that gdiff trains on the real digits behind a digit data set, to read generated digits.

It serves two metrics: the mode histogram of stacked digits (one digit per channel, :mod:`gdiff.eval.modes`)
and, as the torch-fidelity feature extractor ``gdiff-digits``, FID/KID/precision/recall in its feature space
(Inception-v3 reads 8 x 8 digits poorly and needs weights that offline machines lack).

Network: x [B, 1, R, R] in [-1, 1] -> conv 16, conv 32 (3x3, ReLU) -> max-pool 2 -> conv 32, conv 64 (3x3,
ReLU) -> adaptive average pool 4 x 4 -> Linear 128 -> ReLU (the features) -> Linear 10 (logits). Trained with
Adam for 600 steps of 128 digits on a fixed split of the real single digits (seeded); its accuracy on held-out
real digits is stored with the weights and reported beside every result it produces.

Real single digits per data set: ``digits`` and ``stacked_digits`` -> scikit-learn's 1,797 digits (a fixed
random 80 / 20 train / test split); ``stacked_mnist`` -> MNIST train (test: MNIST t10k when present beside it,
else the last 10,000 training images are held out).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

EXTRACTOR_NAME = "gdiff-digits"
FEATURES = 128
VERSION = 1  # bump when the network or its training changes: cached classifiers are keyed by it


class DigitNet(nn.Module):
    """x [B, 1, R, R] in [-1, 1] -> (features [B, 128], logits [B, 10]); see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.body(x)
        return features, self.head(features)


def real_digits(source: object) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train x [N, 1, R, R] in [-1, 1], train labels [N], test x, test labels) behind a digit data source."""
    from gdiff.data import Digits, StackedDigits, StackedMNIST

    if isinstance(source, (Digits, StackedDigits)):
        from gdiff.data.digits import load_sklearn_digits

        images, labels = load_sklearn_digits(source.data_shape[-1])
        x = images[:, None].float() / 8 - 1
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        cut = int(0.8 * len(x))
        return x[order[:cut]], labels[order[:cut]], x[order[cut:]], labels[order[cut:]]
    if isinstance(source, StackedMNIST):
        from gdiff.data.stacked_mnist import FILES, find_idx, read_idx

        def load(split: str) -> tuple[Tensor, Tensor] | None:
            paths = [find_idx(source.root, f) for f in FILES[split]]
            if None in paths:
                return None
            images = torch.from_numpy(read_idx(paths[0], 3).copy())
            x = F.pad(images, (2, 2, 2, 2))[:, None].float() / 127.5 - 1
            return x, torch.from_numpy(read_idx(paths[1], 1).astype("int64"))

        train, test = load("train"), load("test")
        if train is None:
            raise FileNotFoundError(f"the digit classifier trains on MNIST train: {FILES['train']} not found in "
                                    f"{source.root}")
        x, y = train
        if test is None:  # no t10k files: hold out the last 10,000 training digits
            x, y, test = x[:-10_000], y[:-10_000], (x[-10_000:], y[-10_000:])
        return x, y, test[0], test[1]
    raise NotImplementedError(f"no digit classifier for data set {getattr(source, 'name', source)!r}: the "
                              f"digit metrics support digits, stacked_digits and stacked_mnist")


def accuracy(net: DigitNet, x: Tensor, y: Tensor, batch: int = 1000) -> float:
    """Share of ``x`` [N, 1, R, R] classified as ``y`` [N]."""
    with torch.no_grad():
        hits = sum(int((net(x[i:i + batch])[1].argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return hits / len(x)


def train_classifier(x: Tensor, y: Tensor, steps: int = 600, batch: int = 128, seed: int = 0) -> DigitNet:
    """Adam (lr 1e-3) on cross-entropy, batches drawn with ``seed``, random shifts of up to 1 pixel."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DigitNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
        xb = torch.roll(x[idx], shifts=(dx, dy), dims=(2, 3))
        loss = F.cross_entropy(net(xb)[1], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval().requires_grad_(False)


def classifier_path(source: object, cache_dir: str | Path | None) -> Path:
    """Where the classifier of ``source`` is cached: ``<cache>/gdiff-digits-v<VERSION>-<type>-r<resolution>``
    (``<cache>``: gdiff's statistics cache folder, :func:`gdiff.eval.stats_cache.cache_folder`)."""
    from gdiff.eval.stats_cache import cache_folder

    root = cache_folder(cache_dir)
    name = f"{EXTRACTOR_NAME}-v{VERSION}-{type(source).__name__.lower()}-r{source.data_shape[-1]}.safetensors"
    return root / name


def load_classifier(path: str | Path) -> tuple[DigitNet, dict[str, str]]:
    """(classifier in eval mode, its metadata: test accuracy and test size) from a safetensors file; ValueError
    naming the file when it is not one (delete it: the classifier is trained again)."""
    from safetensors import safe_open

    net = DigitNet()
    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
        net.load_state_dict(load_file(str(path)))
        float(meta["test_accuracy"])
    except Exception as err:  # noqa: BLE001 -- any unreadable cached classifier is reported as that file's error
        reason = str(err).splitlines()[0] if str(err) else repr(err)
        raise ValueError(f"{path}: not a gdiff digit classifier file ({reason}); delete it and it is trained "
                         f"again") from err
    return net.eval().requires_grad_(False), meta


def digit_classifier(source: object, cache_dir: str | Path | None = None) -> tuple[Path, DigitNet, float]:
    """(weights file, classifier, test accuracy) for a digit data source, trained once and then cached."""
    path = classifier_path(source, cache_dir)
    if not path.is_file():
        x, y, test_x, test_y = real_digits(source)
        net = train_classifier(x, y)
        meta = {"test_accuracy": json.dumps(accuracy(net, test_x, test_y)), "test_size": str(len(test_x)),
                "train_size": str(len(x)), "channels": str(source.data_shape[0])}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        save_file(net.state_dict(), str(tmp), metadata=meta)
        tmp.replace(path)
    net, meta = load_classifier(path)
    return path, net, float(meta["test_accuracy"])


def classify_digits(net: DigitNet, images: Tensor, batch: int = 1000) -> Tensor:
    """Images [N, C, R, R] in [-1, 1] -> digit per channel [N, C] (int64)."""
    n, c = images.shape[:2]
    flat = images.reshape(n * c, 1, *images.shape[2:]).float()
    with torch.no_grad():
        out = torch.cat([net(flat[i:i + batch])[1].argmax(1) for i in range(0, len(flat), batch)])
    return out.reshape(n, c)


class DigitFeatures(FeatureExtractorBase):
    """torch-fidelity feature extractor ``gdiff-digits``: uint8 [B, 3, R, R] -> ``features`` and ``logits``.

    ``channels`` 1 (single digits, repeated by the loader: channel 0 is read): features [B, 128], logits
    [B, 10]. ``channels`` 3 (stacked): features of the three digits concatenated [B, 384]; logits [B, 1000]
    of mode 100 a + 10 b + c = log p(a) + log p(b) + log p(c) (independent digits).
    """

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None,
                 **kwargs: object) -> None:
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(f"{EXTRACTOR_NAME} needs its classifier file (feature_extractor_weights_path)")
        self.net, meta = load_classifier(feature_extractor_weights_path)
        self.channels = int(meta.get("channels", "1"))

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        images = x.float()[:, :self.channels] / 127.5 - 1
        n, c = images.shape[:2]
        features, logits = self.net(images.reshape(n * c, 1, *images.shape[2:]))
        features = features.reshape(n, -1)
        log_p = F.log_softmax(logits, dim=1).reshape(n, c, 10)
        if c == 3:
            log_p = (log_p[:, 0, :, None, None] + log_p[:, 1, None, :, None] + log_p[:, 2, None, None, :])
        out = {"features": features, "logits": log_p.reshape(n, -1)}
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return "features", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "logits" if metric == "isc" else "features"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> Tensor:
        return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
