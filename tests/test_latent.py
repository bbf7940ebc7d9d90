"""The latent transform: the map against the autoencoder's own encode/decode, the cache (keys, flips, truncation),
training and sampling through the unchanged Trainer, and the errors of a missing autoencoder or extra."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from gdiff import data, recipes
from gdiff.data import maps
from gdiff.data.latent_source import LatentSource, cache_ok

diffusers = pytest.importorskip("diffusers")  # in the dev extra: CI runs these


def tiny_autoencoder(folder, seed: int = 0, channels: int = 1):
    """A randomly initialised AutoencoderKL, 8x8 -> 2x4x4, written with save_pretrained."""
    torch.manual_seed(seed)
    vae = diffusers.AutoencoderKL(in_channels=channels, out_channels=channels,
                                  down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
                                  layers_per_block=1, latent_channels=2, norm_num_groups=4, sample_size=8,
                                  mid_block_add_attention=False)
    vae.save_pretrained(folder)
    return vae.eval()


@pytest.fixture(scope="module")
def ae(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ae")
    return folder, tiny_autoencoder(folder)


def latent_section(folder, cache, **extra):
    return {"type": "digits", "transform": {"type": "latent", "autoencoder": str(folder), "cache_dir": str(cache),
                                            **extra}}


def test_map_is_the_autoencoders_mean_over_scale_and_decodes_through_json(ae, tmp_path):
    folder, vae = ae
    source = data.build(latent_section(folder, tmp_path, scale=2.5))
    assert source.data_shape == (2, 4, 4) and len(source) == 1797 and source.in_memory
    pixels = data.build({"type": "digits"})
    with torch.no_grad():  # independent: diffusers directly, in float64
        mean = vae.double().encode(pixels.raw[:16].double() / 8 - 1).latent_dist.mean
        decoded = vae.decode(mean).sample.clamp(-1, 1)
        vae.float()
    x = source.to_model(source.raw[:16])
    torch.testing.assert_close(x.double(), mean / 2.5, atol=1e-5, rtol=1e-4)
    rebuilt = maps.from_config(json.loads(json.dumps(source.data_map.config())))
    for m in (source.data_map, rebuilt):  # the round trip raw -> model -> pixels is the autoencoder's own
        torch.testing.assert_close(m.to_data(x).double(), decoded, atol=1e-4, rtol=1e-4)
    assert source.to_data(x).shape == (16, 1, 8, 8)


def test_default_scale_is_diffusers_scaling_factor(ae, tmp_path):
    source = data.build(latent_section(ae[0], tmp_path))
    assert source.data_map.scale == pytest.approx(1 / ae[1].config.scaling_factor)


def test_cache_key_follows_weights_data_and_resolution(ae, tmp_path):
    folder, _ = ae
    first = data.build(latent_section(folder, tmp_path)).cache_file
    assert data.build(latent_section(folder, tmp_path)).cache_file == first  # same key: reused
    other_weights = tmp_path / "other"
    tiny_autoencoder(other_weights, seed=1)
    assert data.build(latent_section(other_weights, tmp_path)).cache_file != first
    pixels = data.build({"type": "digits"})
    pixels.raw = pixels.raw.clone()
    pixels.raw[0, 0, 0, 0] += 1  # one pixel of the data set
    assert LatentSource(pixels, str(folder), cache_dir=tmp_path).cache_file != first
    wider = {"type": "digits", "resolution": 16, "transform": latent_section(folder, tmp_path)["transform"]}
    source = data.build(wider)
    assert source.cache_file != first and source.data_shape == (2, 8, 8)


def test_a_truncated_cache_is_rebuilt(ae, tmp_path):
    source = data.build(latent_section(ae[0], tmp_path))
    path, expected = source.cache_file, source.raw.clone()
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    assert not cache_ok(path, expected.shape)
    again = data.build(latent_section(ae[0], tmp_path))
    assert again.cache_file == path and path.stat().st_size == size
    assert torch.equal(again.raw, expected)


def test_flips_happen_before_encoding_both_orientations_cached(ae, tmp_path):
    folder, vae = ae
    pixels = data.build({"type": "digits"})
    pixels.hflip = True
    source = LatentSource(pixels, str(folder), cache_dir=tmp_path)
    n = len(pixels)
    assert len(source) == 2 * n and not source.hflip and source.orientations == 2
    cached = np.load(source.cache_file)
    with torch.no_grad():
        mirrored = vae.encode(pixels.raw[:8].flip(-1).float() / 8 - 1).latent_dist.mean
    torch.testing.assert_close(torch.from_numpy(cached[n:n + 8]), mirrored, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(torch.from_numpy(cached[n:n + 8]), torch.from_numpy(cached[:8]).flip(-1))


TINY = {
    "diffusion": {"schedule": "cosine", "num_steps": 2},
    "generator": {"type": "unet", "channels": 32, "channel_mult": [1, 2], "num_res_blocks": 1,
                  "attention_resolutions": [], "num_groups": 8, "z_dim": 8, "w_dim": 16, "mapping_layers": 1},
    "discriminator": {"type": "unet_discriminator", "channels": 32, "channel_mult": [1, 2], "num_res_blocks": 1,
                      "attention_resolutions": [], "num_groups": 8, "heads": [], "pairwise": True},
    "objective": {"type": "lddgan", "decay_steps": 3},
    "train": {"max_steps": 3, "batch_size": 8, "log_every": 1, "threads": 1, "trackers": [], "num_workers": 0},
    "eval": {"num_samples": 8, "batch_size": 8},
}


def test_a_latent_recipe_trains_through_the_trainer_and_samples_pixels(ae, tmp_path, capsys):
    from gdiff.trainer import Trainer

    recipe = recipes.from_dict({**TINY, "data": latent_section(ae[0], tmp_path / "cache")})
    trainer = Trainer(recipe, tmp_path / "run")
    trainer.train()
    assert trainer.step == 3
    samples = trainer.sample(5)
    assert samples.shape == (5, 1, 8, 8) and samples.abs().max() <= 1
    from gdiff import load_generator  # the exported folder carries its autoencoder and decodes to pixels

    moved = tmp_path / "elsewhere" / "generator"
    shutil.copytree(tmp_path / "run" / "generator", moved)
    config = json.loads((moved / "config.json").read_text())
    assert config["data_map"]["autoencoder"] == "autoencoder" and (moved / "autoencoder" / "config.json").is_file()
    exported = load_generator(moved)
    assert torch.equal(exported.sample(3, seed=1), load_generator(tmp_path / "run").sample(3, seed=1))
    assert exported.sample(3).shape == (3, 1, 8, 8)
    from gdiff.sample import main as sample_main  # the unchanged CLI decodes, and says how long decoding took

    sample_main([str(moved), "--num", "4", "--out", str(tmp_path / "pixels.npz")])
    assert np.load(tmp_path / "pixels.npz")["samples"].shape == (4, 1, 8, 8)
    assert "map to data space (latent)" in capsys.readouterr().out
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["g/latent_rec"]) for r in log if "g/latent_rec" in r)


def _cli(tmp_path, capsys, *overrides):
    from gdiff.train import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({**TINY, "data": latent_section(tmp_path / "no_such_autoencoder", tmp_path)}))
    run = tmp_path / "run"
    code = main([str(recipe), *overrides, "--run-dir", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err, run


def test_a_missing_autoencoder_is_one_error_line_naming_the_key(tmp_path, capsys):
    code, err, run = _cli(tmp_path, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "data.transform.autoencoder" in err[0] and "no_such_autoencoder" in err[0]
    assert not run.exists()


def test_a_missing_diffusers_extra_is_one_error_line_naming_it(ae, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "diffusers", None)  # import diffusers -> ImportError
    code, err, run = _cli(tmp_path, capsys, f"data.transform.autoencoder={ae[0]}")
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "data.transform.autoencoder" in err[0] and 'pip install -e ".[latent]"' in err[0]
    assert not run.exists()


def test_pickled_single_files_are_refused(tmp_path):
    from gdiff.autoencoders import load

    path = tmp_path / "model.ckpt"
    path.write_bytes(b"not read")
    with pytest.raises(ValueError, match="pickle"):
        load(path)
