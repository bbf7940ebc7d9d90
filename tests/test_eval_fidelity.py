"""torch-fidelity metrics through gdiff.eval.fidelity, with a tiny feature extractor registered by the tests
(nothing is downloaded): FID against an independent float64 computation, self-distance ~0, caching by key
(safe loading and the cache format: tests/test_eval_safe_loading.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from gdiff.eval.fidelity import (
    FidelityOptions,
    MissingWeightsError,
    Reference,
    UInt8Images,
    fidelity_metrics,
    reference_key,
    source_reference,
)
from gdiff.sample import to_uint8

TINY = f"{__name__}:TinyExtractor"


class TinyExtractor(FeatureExtractorBase):
    """uint8 [B, 3, H, W] -> ``feat`` [B, 16] = tanh(pool4x4(x / 255) W1), ``logits`` [B, 10] = pool(x) W2;
    fixed random weights (seed 0)."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("w1", torch.randn(48, 16, generator=gen) / 48**0.5 * 4)
        self.register_buffer("w2", torch.randn(48, 10, generator=gen) / 48**0.5 * 4)

    def forward(self, x):
        h = torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1)
        out = {"feat": torch.tanh(h @ self.w1), "logits": h @ self.w2}
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "feat", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "logits" if metric == "isc" else "feat"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)


def images(n: int, seed: int, size: int = 8) -> torch.Tensor:
    """Smooth random uint8 images [n, 3, size, size] (so pooled features vary between images)."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 2, 2, generator=gen)
    up = torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)
    return (up * 255).round().to(torch.uint8)


def perturb(x: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)) * sigma * 255
    return (x.float() + noise).clamp(0, 255).round().to(torch.uint8)


@pytest.fixture
def options(tmp_path) -> FidelityOptions:
    return FidelityOptions(feature_extractor=TINY, cache_dir=str(tmp_path / "cache"))


def independent_fid(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 sqrtm(S_a S_b)) in float64 with scipy."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(sa @ sb).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa + sb - 2 * root))


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_perturbation(options):
    real = images(300, 0)
    ref = Reference(UInt8Images(real), "test-self")
    fids = [fidelity_metrics(perturb(real, sigma) if sigma else real, ref, ["fid"], options)["fid"]
            for sigma in (0.0, 0.05, 0.15, 0.4)]
    assert abs(fids[0]) < 1e-4
    assert 0 < fids[1] < fids[2] < fids[3], fids


def test_fid_agrees_with_an_independent_float64_computation(options):
    real, fake = images(400, 0), perturb((images(300, 7) * 0.7).to(torch.uint8), 0.1)
    fid = fidelity_metrics(fake, Reference(UInt8Images(real), "test-independent"), ["fid"], options)["fid"]
    extractor = TinyExtractor("tiny", ["feat"])
    expected = independent_fid(extractor(fake)[0].numpy(), extractor(real)[0].numpy())
    assert expected > 0.1  # far from the self-distance 0
    assert fid == pytest.approx(expected, rel=2e-3)


def test_all_metrics_on_identical_and_shifted_sets(options):
    real = images(200, 3)
    ref = Reference(UInt8Images(real), "test-all")
    same = fidelity_metrics(real, ref, ["fid", "isc", "kid", "prc"], options)
    assert set(same) == {"fid", "isc_mean", "isc_std", "kid_mean", "kid_std", "precision", "recall", "f_score"}
    assert abs(same["fid"]) < 1e-4 and same["precision"] == 1.0 and same["recall"] == 1.0
    assert same["isc_mean"] > 1.0  # exp(E KL(p(y|x) || p(y))) >= 1
    fresh = fidelity_metrics(images(200, 4), ref, ["kid"], options)["kid_mean"]  # same distribution
    shifted = fidelity_metrics((images(200, 4) * 0.5).to(torch.uint8), ref, ["kid", "prc"], options)
    assert abs(fresh) < shifted["kid_mean"] / 10
    assert shifted["precision"] < 1.0


def test_cache_keys_cover_data_set_split_resolution_and_count():
    base = reference_key("cifar10", "train", (3, 32, 32), 50_000)
    variants = [reference_key("imagenet64", "train", (3, 32, 32), 50_000),
                reference_key("cifar10", "test", (3, 32, 32), 50_000),
                reference_key("cifar10", "train", (3, 64, 64), 50_000),
                reference_key("cifar10", "train", (3, 32, 32), 10_000)]
    assert len({base, *variants}) == 5
    assert reference_key("a/b c", "train", (1, 8, 8), 5) == "gdiff-a_b_c-train-1x8x8-n5"


def test_reference_statistics_are_cached_under_their_key(options, tmp_path):
    from gdiff import data

    digits = data.build({"type": "digits"})
    small, large = source_reference(digits, 500), source_reference(digits, 600)
    assert small.key != large.key and len(small.images) == 500 and len(large.images) == 600
    fake = images(200, 5)
    first = fidelity_metrics(fake, small, ["fid"], options)["fid"]
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert cached and all(name.startswith(small.key) for name in cached)

    class Unreadable(UInt8Images):
        def __getitem__(self, index):
            raise AssertionError("a cached reference must not be read again")

    again = fidelity_metrics(fake, Reference(Unreadable(images(500, 0)), small.key), ["fid"], options)["fid"]
    assert again == first
    assert fidelity_metrics(fake, large, ["fid"], options)["fid"] != first


def test_reference_images_are_the_data_bytes():
    from gdiff import data

    digits = data.build({"type": "digits"})
    ref = source_reference(digits, 10_000)
    assert len(ref.images) == len(digits) and ref.key.endswith(f"-n{len(digits)}")
    raw, _ = digits[17]
    expected = to_uint8(digits.to_model(raw[None]))[0]
    assert torch.equal(ref.images[17], expected) and ref.images[17].shape == (3, 8, 8)
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    assert torch.equal(to_uint8(pixels.float() / 127.5 - 1)[:, 0], pixels[:, 0])


def test_missing_weights_say_what_to_pass(monkeypatch, tmp_path):
    import urllib.error

    with pytest.raises(FileNotFoundError, match="inception_weights"):
        FidelityOptions(inception_weights=str(tmp_path / "missing.pth"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    real = images(20, 0)
    for metric, flag in (("fid", "--inception-weights"), ("prc", "--vgg16-weights")):
        with pytest.raises(MissingWeightsError, match=flag):
            fidelity_metrics(real, Reference(UInt8Images(real), "offline"), [metric],
                             FidelityOptions(cache_dir=str(tmp_path)))


def test_every_metric_equals_torch_fidelitys_own_calculate_metrics(options):
    """gdiff extracts and caches itself but computes with torch-fidelity's functions: the numbers are those of
    ``torch_fidelity.calculate_metrics`` (its cache off) on the same inputs, to the last bit."""
    import torch_fidelity

    from gdiff.eval.fidelity import RESULT_KEYS

    real, fake = images(150, 0), perturb(images(120, 2), 0.1)
    ours = fidelity_metrics(fake, Reference(UInt8Images(real), "test-equal"), ["fid", "isc", "kid", "prc"], options)
    theirs = torch_fidelity.calculate_metrics(input1=UInt8Images(fake), input2=UInt8Images(real), cache=False,
                                              feature_extractor=TINY, fid=True, isc=True, kid=True, prc=True,
                                              kid_subset_size=120, cuda=False, save_cpu_ram=True, verbose=False)
    assert ours == {RESULT_KEYS[k]: float(v) for k, v in theirs.items()}
