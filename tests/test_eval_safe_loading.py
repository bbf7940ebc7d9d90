"""Nothing a user hands gdiff.eval runs: crafted pickles as feature-extractor weights, as files in the torch hub
cache and as statistics-cache entries are refused with an error naming the file, and their code never runs
(the marker file a crafted pickle would create stays absent). The statistics cache is gdiff's own safetensors
format, keyed and checksummed; torch-fidelity's pickle cache is never read."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gdiff.eval import stats_cache, weights
from gdiff.eval.fidelity import FidelityOptions, Reference, UInt8Images, fidelity_metrics
from tests.test_eval_fidelity import TINY, images


class RunsShell:
    """Unpickling this runs ``touch <marker>`` (what a crafted weights or cache file does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted(path: Path, marker: Path, kind: str = "torch") -> Path:
    """A file whose unpickling creates ``marker``: ``torch`` = torch.save zip (a .pth), ``pickle`` = raw pickle."""
    payload = {"conv.weight": RunsShell(marker)}
    if kind == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "marker-code-ran"


@pytest.fixture(autouse=True)
def private_homes(tmp_path, monkeypatch):
    """Torch hub and gdiff cache in tmp_path; no download ever happens."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("GDIFF_CACHE_DIR", str(tmp_path / "gdiff_cache"))

    def no_download(*args, **kwargs):
        raise AssertionError("a test must not download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_the_crafted_files_run_code_when_unpickled(tmp_path, marker, kind):
    """The fixture is live: an unsafe load of the crafted file creates the marker."""
    path = crafted(tmp_path / "evil.pth", marker, kind)
    torch.load(path, weights_only=False) if kind == "torch" else pickle.loads(path.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("kind,name", [("torch", "evil.pth"), ("pickle", "evil.pth"), ("pickle", "evil.safetensors")])
def test_crafted_weights_are_refused_and_never_run(tmp_path, marker, kind, name):
    path = crafted(tmp_path / name, marker, kind)
    with pytest.raises(ValueError, match=f"--inception-weights: {path} is not a plain weights file") as err:
        weights.load_state_dict(path, "--inception-weights")
    assert "\n" not in str(err.value) and "Re-running" not in str(err.value)  # one line, no advice to unpickle
    real = images(20, 0)
    for flag, metric in (("inception_weights", "fid"), ("vgg16_weights", "prc")):
        options = FidelityOptions(**{flag: str(path)}, cache_dir=str(tmp_path / "cache"))
        with pytest.raises(ValueError, match=str(path)):
            options.check([metric])
        with pytest.raises(ValueError, match=str(path)):
            fidelity_metrics(real, Reference(UInt8Images(real), "evil"), [metric], options)
    assert not marker.exists()


def test_weights_files_must_be_state_dicts_of_the_right_network(tmp_path):
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], listed)  # allowed by weights_only, but not a state dict
    with pytest.raises(ValueError, match="flat dict of name -> tensor"):
        weights.load_state_dict(listed)
    other = tmp_path / "other.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(ValueError, match=f"--inception-weights: {other} are not inception-v3-compat weights"):
        weights.build_extractor(weights.INCEPTION, ["2048"], other)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        weights.load_state_dict(tmp_path / "missing.pth")


def test_inception_gets_exactly_the_tensors_of_the_given_file(tmp_path, monkeypatch):
    """Random Inception weights (an instance built without any), saved as safetensors and as a .pth, come back
    in the extractor gdiff builds: every tensor equal."""
    import torch_fidelity.feature_extractor_inceptionv3 as inception

    with monkeypatch.context() as patch:
        patch.setattr(inception, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        state = inception.FeatureExtractorInceptionV3(weights.INCEPTION, ["2048"]).state_dict()
    save_file(state, str(tmp_path / "inception.safetensors"))
    torch.save(state, tmp_path / "inception.pth")
    for name in ("inception.safetensors", "inception.pth"):
        built = weights.build_extractor(weights.INCEPTION, ["2048", "logits_unbiased"], tmp_path / name)
        assert not built.training
        assert all(torch.equal(value, built.state_dict()[key]) for key, value in state.items())


def test_a_planted_hub_cache_file_is_refused_before_unpickling(tmp_path, marker):
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True)
    planted = crafted(hub / "weights-inception-2015-12-05-6726825d.pth", marker)
    with pytest.raises(ValueError, match=f"{planted}: SHA-256 .* does not start with 6726825d"):
        FidelityOptions(cache_dir=str(tmp_path / "cache")).check(["fid"])
    assert not marker.exists()


def test_torch_fidelity_extractors_that_unpickle_downloads_are_refused(tmp_path):
    with pytest.raises(ValueError, match="clip-vit-b-32.*unpickling"):
        FidelityOptions(feature_extractor="clip-vit-b-32", cache_dir=str(tmp_path)).check(["fid"])
    with pytest.raises(ValueError, match="feature extractor no_such_module:X: cannot import no_such_module"):
        FidelityOptions(feature_extractor="no_such_module:X", cache_dir=str(tmp_path)).check(["fid"])


def run_fid(tmp_path, key: str = "ref") -> float:
    real, fake = images(60, 0), images(50, 1)
    options = FidelityOptions(feature_extractor=TINY, cache_dir=str(tmp_path / "cache"))
    return fidelity_metrics(fake, Reference(UInt8Images(real), key), ["fid", "kid"], options)["fid"]


def test_cache_entries_are_keyed_checksummed_safetensors(tmp_path):
    first = run_fid(tmp_path)
    entries = sorted((tmp_path / "cache").iterdir())
    assert [p.name for p in entries] == [f"ref-{TINY.replace(':', '_')}-wnone-feat-{kind}.safetensors"
                                         for kind in ("features", "fid-stats")]
    from safetensors import safe_open

    with safe_open(str(entries[1]), "np") as f:
        meta = f.metadata()
    assert meta["format"] == stats_cache.FORMAT and meta["key"] == f"ref-{TINY}-wnone-feat-fid-stats"
    assert run_fid(tmp_path) == first  # read back, checksum verified

    raw = bytearray(entries[0].read_bytes())
    raw[-1] ^= 0xFF  # one flipped bit in the last feature value
    entries[0].write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=f"{entries[0]}: cache entry fails its SHA-256 checksum"):
        run_fid(tmp_path)

    other = stats_cache.entry_path(tmp_path / "cache", f"other-{TINY}-wnone-feat-fid-stats")
    other.write_bytes(entries[1].read_bytes())  # a valid entry under another key's name
    with pytest.raises(ValueError, match=f"{other}: cache entry of format .* and key 'ref-"):
        run_fid(tmp_path, "other")


def test_crafted_cache_entries_never_run(tmp_path, marker):
    """A pickle in place of a gdiff entry is refused naming it; pickles named as torch-fidelity's cache files,
    in gdiff's folder and in torch-fidelity's default folder, are never opened."""
    cache = tmp_path / "cache"
    torch_fidelity_cache = Path(os.environ["TORCH_HOME"]) / "fidelity_cache"
    for folder in (cache, torch_fidelity_cache):
        folder.mkdir(parents=True)
        for name in (f"ref-{TINY}-features-feat", f"ref-{TINY}-stat-fid-feat", f"ref-w-{TINY}-features-feat"):
            crafted(folder / f"{name}.pt", marker, "torch")
    assert run_fid(tmp_path) > 0
    entry = stats_cache.entry_path(cache, f"ref-{TINY}-wnone-feat-fid-stats")
    crafted(entry, marker, "pickle")
    with pytest.raises(ValueError, match=f"{entry}: not a gdiff statistics cache file"):
        run_fid(tmp_path)
    assert not marker.exists()


def test_cache_roundtrip_keeps_dtypes_and_values(tmp_path):
    arrays = {"mu": np.arange(3, dtype=np.float32), "sigma": np.eye(3) * 0.5}
    stats_cache.save_entry(tmp_path, "k", arrays)
    back = stats_cache.load_entry(tmp_path, "k")
    assert {k: (v.dtype, v.tolist()) for k, v in back.items()} == {k: (v.dtype, v.tolist()) for k, v in arrays.items()}
    assert stats_cache.load_entry(tmp_path, "absent") is None
    long_key = "x/" * 300
    assert len(stats_cache.entry_path(tmp_path, long_key).name) < 255
    assert stats_cache.entry_path(tmp_path, long_key) != stats_cache.entry_path(tmp_path, long_key + "y")


def test_cache_folder_resolution(monkeypatch, tmp_path):
    assert stats_cache.cache_folder("~/given") == Path.home() / "given"
    assert stats_cache.cache_folder() == tmp_path / "gdiff_cache" / "fidelity"
    monkeypatch.delenv("GDIFF_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert stats_cache.cache_folder() == tmp_path / "xdg" / "gdiff" / "fidelity"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    assert stats_cache.cache_folder() == Path.home() / ".cache" / "gdiff" / "fidelity"


def test_a_crafted_digit_classifier_never_runs(tmp_path, marker):
    from gdiff import data
    from gdiff.eval.digit_classifier import classifier_path, digit_classifier

    digits = data.build({"type": "digits"})
    path = classifier_path(digits, None)
    assert path.parent == tmp_path / "gdiff_cache" / "fidelity"  # gdiff's cache folder, not torch-fidelity's
    path.parent.mkdir(parents=True)
    crafted(path, marker, "torch")
    with pytest.raises(ValueError, match=f"{path}: not a gdiff digit classifier file"):
        digit_classifier(digits)
    assert not marker.exists()
