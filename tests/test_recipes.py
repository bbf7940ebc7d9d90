"""Recipes: extends, validation of every plain key, safe YAML, and every shipped recipe loads and builds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gdiff import recipes
from gdiff.build import build, describe

ROOT = Path(__file__).parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
GOOD = recipes.parse_yaml((ROOT / "recipes" / "mog25_siddm.yaml").read_text())


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------- shipped recipes
PAPER_RECIPES = ["cifar10_ddgan", "cifar10_siddm", "celebahq256_ddgan", "celebahq256_siddm", "lsun_church256_ddgan",
                 "imagenet64_siddm", "stackedmnist_ddgan"]


def test_recipes_exist():
    names = {p.stem for p in RECIPES}
    assert {"mog25_siddm", "mog25_ddgan", "mog25_siddm_no_afd", *PAPER_RECIPES} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipe_loads_and_builds(path):
    """Load + validate, then what --dry-run does: data shape (assumed where the files are missing), both networks
    on the meta device, the objective checked against the discriminator."""
    recipe = recipes.load(path)
    out = describe(build(recipe, dry_run=True))
    assert yaml.safe_load(out) == yaml.safe_load(yaml.safe_dump(recipe.to_dict())), "the YAML part is the recipe"
    assert "extends" not in out
    assert "# generator (" in out and " parameters" in out


# docs/method.md#ddgan-hyper-parameters and #siddm-settings: what each paper recipe must say (flattened keys).
PAPER = {
    "cifar10_ddgan": {"diffusion.schedule": "vp", "diffusion.num_steps": 4, "generator.channels": 128,
                      "generator.channel_mult": [1, 2, 2, 2], "generator.mapping_layers": 5,
                      "discriminator.type": "ddgan_small", "train.batch_size": 256, "optim.lr_g": 1.6e-4,
                      "optim.lr_d": 1.25e-4, "objective.r1_gamma": 0.02, "objective.lazy_reg": 15,
                      "train.ema_decay": 0.9999, "train.max_steps": 1800 * (50_000 // 256)},
    "celebahq256_ddgan": {"diffusion.num_steps": 2, "generator.channels": 64,
                          "generator.channel_mult": [1, 1, 2, 2, 4, 4],
                          "generator.mapping_layers": 4, "discriminator.type": "ddgan_large", "train.batch_size": 32,
                          "optim.lr_g": 2e-4, "optim.lr_d": 1e-4, "objective.r1_gamma": 2.0, "objective.lazy_reg": 10,
                          "train.ema_decay": 0.9999, "train.max_steps": 800 * (30_000 // 32),
                          "data.resolution": 256},
    "lsun_church256_ddgan": {"diffusion.num_steps": 4, "generator.channels": 64, "generator.mapping_layers": 4,
                             "generator.channel_mult": [1, 1, 2, 2, 4, 4], "discriminator.type": "ddgan_large",
                             "train.batch_size": 64, "optim.lr_g": 1.6e-4, "optim.lr_d": 1e-4,
                             "objective.r1_gamma": 1.0, "objective.lazy_reg": 10, "train.ema_decay": 0.999,
                             "train.max_steps": 500 * (126_227 // 64)},
    "stackedmnist_ddgan": {"data.type": "stacked_mnist", "diffusion.num_steps": 4, "discriminator.type": "ddgan_small",
                           "train.batch_size": 256, "objective.r1_gamma": 0.02, "train.ema_decay": 0.9999},
    "cifar10_siddm": {"diffusion.schedule": "cosine", "diffusion.num_steps": 4, "generator.channels": 256,
                      "generator.channel_mult": [2, 2, 2], "train.batch_size": 256},
    "celebahq256_siddm": {"diffusion.schedule": "cosine", "diffusion.num_steps": 2, "generator.channels": 192,
                          "generator.channel_mult": [1, 1, 2, 3, 4], "train.batch_size": 128},
    "imagenet64_siddm": {"data.type": "imagenet64", "diffusion.schedule": "cosine", "diffusion.num_steps": 4,
                         "generator.channel_mult": [1, 2, 3, 4], "discriminator.projection": True,
                         "train.batch_size": 2048},
}
DDGAN_COMMON = {"objective.type": "ddgan", "discriminator.pairwise": True, "optim.betas": [0.5, 0.9],
                "optim.lr_decay": "cosine", "optim.lr_min": 1e-5, "generator.z_dim": 100}
SIDDM_COMMON = {"objective.type": "siddm", "objective.afd_weight": 1.0, "objective.denoise_weight": 1.0,
                "discriminator.heads": ["regression", "denoised"], "discriminator.pairwise": False,
                "optim.lr_g": 2e-4, "optim.lr_d": 1e-4, "train.ema_decay": 0.9999, "generator.dropout": 0.1}
IMAGE_COMMON = {"eval.metrics": ["fid"], "eval.best": "fid"}


@pytest.mark.parametrize("name", PAPER, ids=list(PAPER))
def test_paper_recipes_hold_the_papers_hyper_parameters(name):
    flat = recipes._flatten(recipes.load(ROOT / "recipes" / f"{name}.yaml").to_dict())
    common = DDGAN_COMMON if name.endswith("ddgan") else SIDDM_COMMON
    expected = {**common, **({} if name.startswith("stackedmnist") else IMAGE_COMMON), **PAPER[name]}
    wrong = {k: (flat.get(k), v) for k, v in expected.items() if flat.get(k) != v}
    assert not wrong, f"(recipe, paper): {wrong}"
    assert flat["train.sample_every"] > 0 and flat["train.checkpoint_every"] > 0 and flat["eval.every"] > 0


def test_shipped_ablations_change_only_their_keys():
    def flat(name: str) -> dict:
        return recipes._flatten(recipes.load(ROOT / "recipes" / f"{name}.yaml").to_dict())

    def changed(a: dict, b: dict) -> dict:
        return {k: b.get(k) for k in set(a) | set(b) if a.get(k) != b.get(k)}

    assert changed(flat("cifar10_siddm"), flat("cifar10_siddm_no_afd")) == {
        "objective.afd_weight": 0, "discriminator.heads": ["denoised"]}
    assert changed(flat("cifar10_siddm"), flat("cifar10_siddm_no_denoise")) == {
        "objective.denoise_weight": 0, "discriminator.heads": ["regression"]}
    assert changed(flat("cifar10_ddgan"), flat("cifar10_ddgan_no_r1")) == {"objective.r1_gamma": 0}


# ------------------------------------------------------------------------------------------------- extends
def test_extends_deep_merges_mappings_and_replaces_everything_else(tmp_path):
    write(tmp_path / "base.yaml", "a: {x: 1, y: {p: 1, q: 2}, l: [1, 2]}\nb: 3\nc: {k: 1}\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\na: {y: {q: 5}, l: [9]}\nb: {now: 'a map'}\nd: 4\n")
    assert recipes.read(child) == {"a": {"x": 1, "y": {"p": 1, "q": 5}, "l": [9]}, "b": {"now": "a map"},
                                   "c": {"k": 1}, "d": 4}


def test_extends_chains_and_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    write(tmp_path / "lib" / "root.yaml", "a: {x: 1, y: 1, z: 1}\n")
    write(tmp_path / "lib" / "mid" / "mid.yaml", "extends: ../root.yaml\na: {y: 2}\n")
    leaf = write(tmp_path / "runs" / "leaf.yaml", "extends: ../lib/mid/mid.yaml\na: {z: 3}\n")
    monkeypatch.chdir(tmp_path / "lib")  # the working directory plays no part
    assert recipes.read(leaf) == {"a": {"x": 1, "y": 2, "z": 3}}


def test_extends_cycles_are_reported(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\nx: 1\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\ny: 1\n")
    with pytest.raises(ValueError, match=r"cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        recipes.read(tmp_path / "a.yaml")
    write(tmp_path / "self.yaml", "extends: self.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        recipes.read(tmp_path / "self.yaml")


def test_extends_errors_name_the_files(tmp_path):
    child = write(tmp_path / "child.yaml", "extends: nowhere.yaml\n")
    with pytest.raises(FileNotFoundError, match=r"child\.yaml: extends: base recipe not found: .*nowhere\.yaml"):
        recipes.read(child)
    bad = write(tmp_path / "bad.yaml", "extends: [a.yaml]\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: 'extends' must be the path"):
        recipes.read(bad)


def test_delete_removes_a_base_key_in_files_and_overrides(tmp_path):
    write(tmp_path / "base.yaml", "a: {x: 1, y: 2}\nb: 1\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\na: {x: !delete}\nb: !delete\n")
    assert recipes.read(child) == {"a": {"y": 2}}
    flow = write(tmp_path / "flow.yaml", "extends: base.yaml\na: {x: !delete, y: 3, z: 4}\n")
    assert recipes.read(flow) == {"a": {"y": 3, "z": 4}, "b": 1}
    assert recipes.apply_overrides({"a": {"x": 1, "y": 2}}, ["a.y=!delete"]) == {"a": {"x": 1}}
    with pytest.raises(ValueError, match="not in a list"):
        recipes.read(write(tmp_path / "list.yaml", "extends: base.yaml\nb: [!delete]\n"))


def test_resolved_recipe_has_no_extends_and_round_trips(tmp_path):
    base = write(tmp_path / "base.yaml", (ROOT / "recipes" / "mog25_siddm.yaml").read_text())
    child = write(tmp_path / "child.yaml", f"extends: {base.name}\ntrain: {{max_steps: 7}}\n")
    recipe = recipes.load(child)
    assert recipe.train.max_steps == 7 and recipe.train.batch_size == 512
    dumped = write(tmp_path / "resolved.yaml", yaml.safe_dump(recipe.to_dict()))
    assert "extends" not in dumped.read_text() and recipes.load(dumped) == recipe


# ---------------------------------------------------------------------------------------------- validation
def bad(*overrides: str) -> str:
    with pytest.raises(ValueError) as info:
        recipes.from_dict(recipes.apply_overrides(GOOD, overrides), source="good.yaml")
    return str(info.value)


@pytest.mark.parametrize("override, named", [
    # wrong types
    ("train.max_steps=ten", "train.max_steps"), ("train.max_steps=1.5", "train.max_steps"),
    ("optim.betas=[0.5]", "optim.betas"), ("optim.betas=[a, b]", "optim.betas"), ("optim.lr_g=fast", "optim.lr_g"),
    ("train.ema_warmup=1", "train.ema_warmup"), ("train.trackers=tensorboard", "train.trackers"),
    ("optim.lr_decay=no", "quote the value"), ("eval.metrics=[1]", "eval.metrics"),
    # out of range
    ("train.batch_size=0", "train.batch_size"), ("train.max_steps=-1", "train.max_steps"),
    ("optim.lr_g=0", "optim.lr_g"), ("optim.lr_d=-1e-4", "optim.lr_d"), ("optim.lr_g=.nan", "optim.lr_g"),
    ("optim.betas=[0.5, 1.0]", "optim.betas"), ("optim.betas=[-0.1, 0.9]", "optim.betas"),
    ("optim.weight_decay=-1", "optim.weight_decay"), ("optim.lr_decay=cos", "optim.lr_decay"),
    ("optim.decay_start=1", "optim.decay_start"), ("optim.lr_min=1", "optim.lr_min"),
    ("train.ema_decay=1.5", "train.ema_decay"), ("train.ema_decay=-0.1", "train.ema_decay"),
    ("train.micro_batch=-1", "train.micro_batch"), ("train.micro_batch=100", "divisor of train.batch_size"),
    ("train.seed=-1", "train.seed"), ("train.log_every=0", "train.log_every"),
    ("train.mixed_precision=fp8", "train.mixed_precision"), ("train.compile=fast", "train.compile"),
    ("train.num_workers=-1", "train.num_workers"), ("train.sample_every=-5", "train.sample_every"),
    ("train.checkpoint_every=-1", "train.checkpoint_every"), ("train.keep_checkpoints=0", "train.keep_checkpoints"),
    ("train.threads=-2", "train.threads"), ("train.trackers=[tensorbord]", "train.trackers"),
    ("train.trackers=[wandb, wandb]", "without repeats"),
    ("eval.num_samples=0", "eval.num_samples"), ("eval.batch_size=0", "eval.batch_size"),
    ("eval.every=-1", "eval.every"), ("eval.metrics=[fdi]", "eval.metrics"), ("eval.best=fid", "eval.best"),
    ("eval.best_mode=lowest", "eval.best_mode"),
    # integers are integers (never truncated), lists are lists (never read letter by letter)
    ("train.batch_size=32.5", "train.batch_size must be int (an integer), got 32.5"),
    ("train.seed=true", "train.seed must be int"), ("eval.every=2.5", "eval.every must be int"),
    ("eval.metrics=fid", "eval.metrics must be a list of strings, got 'fid'"),
    ("optim.betas=0.5", "optim.betas must be a list of 2 numbers"), ("optim.lr_g=[1]", "optim.lr_g must be float"),
    ("eval.inception_weights=[a]", "eval.inception_weights must be str"),
    # structure
    ("train=3", "'train' must be a mapping"), ("generator=7", "generator"),
])
def test_bad_plain_keys_are_named(override, named):
    message = bad(override)
    assert named in message and message.startswith("good.yaml: ")


def test_good_edge_values_are_accepted():
    recipe = recipes.from_dict(recipes.apply_overrides(GOOD, [
        "train.max_steps=0", "train.micro_batch=128", "train.ema_decay=1", "optim.betas=[0, 0.999]",
        "train.max_steps=1.0e+6", "train.trackers=[]", "eval.metrics=[fid, kid]", "eval.best=kid_mean",
        "eval.best_mode=max", "eval.best=frechet", "train.mixed_precision=no", "train.compile='no'"]))
    assert recipe.train.max_steps == 1_000_000 and isinstance(recipe.train.max_steps, int)
    assert recipe.optim.betas == (0.0, 0.999) and recipe.eval.best == "frechet"
    assert recipe.train.mixed_precision == "no" and recipe.train.compile == "no"  # YAML 1.1 reads no as False


def test_eval_takes_the_offline_weight_paths_that_gdiff_eval_reads(tmp_path):
    from gdiff.eval import options_from_config

    weights = {key: write(tmp_path / f"{key}.pth", "w") for key in ("inception_weights", "vgg16_weights")}
    recipe = recipes.from_dict(recipes.apply_overrides(GOOD, [f"eval.{k}={v}" for k, v in weights.items()]
                                                       + ["eval.feature_extractor=digits"]))
    options = options_from_config(recipe.eval)
    assert options.inception_weights == str(weights["inception_weights"])
    assert options.vgg16_weights == str(weights["vgg16_weights"]) and options.feature_extractor == "digits"
    assert options_from_config(recipes.from_dict(GOOD).eval).inception_weights is None


def test_metric_names_have_one_home():
    from gdiff.metrics import names

    assert recipes.METRIC_RESULTS is names.METRIC_RESULTS and recipes.MIXTURE_METRICS is names.MIXTURE_METRICS
    assert "must be one of ['fid', 'isc', 'kid', 'prc', 'modes']" in bad("eval.metrics=[fdi]")


def test_eval_best_names_a_result_of_the_metrics():
    assert "must be one of ['isc_mean', 'isc_std', 'frechet'" in bad("eval.metrics=[isc]", "eval.best=isc")
    assert "(did you mean 'kid_mean'?)" in bad("eval.metrics=[kid]", "eval.best=kid_maen")
    for metric, result in (("isc", "isc_mean"), ("prc", "recall"), ("modes", "kl_modes_uniform"), ("fid", "fid")):
        recipes.from_dict(recipes.apply_overrides(GOOD, [f"eval.metrics=[{metric}]", f"eval.best={result}"]))


@pytest.mark.parametrize("override, suggestion", [
    ("trian.max_steps=3", "unknown recipe section 'trian' (did you mean 'train'?)"),
    ("optimizer.lr_g=1", "(did you mean 'optim'?)"),
    ("train.bach_size=3", "unknown recipe key train.bach_size (did you mean 'batch_size'?)"),
    ("optim.lr_gen=1e-4", "(did you mean 'lr_g'?)"),
    ("eval.num_sample=5", "(did you mean 'num_samples'?)"),
    ("train.mixed_precision=bf61", "(did you mean 'bf16'?)"),
])
def test_did_you_mean(override, suggestion):
    assert suggestion in bad(override)


def test_unknown_key_far_from_any_gets_no_suggestion():
    message = bad("train.zzz=1")
    assert "train.zzz" in message and "did you mean" not in message and "batch_size" in message


# ---------------------------------------------------------------------------------------------- YAML, files
def test_broken_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path / "broken.yaml", "data: {type: mog25}\ntrain:\n  max_steps: [1, 2\n  seed: 3\n")
    with pytest.raises(ValueError, match=r"broken\.yaml: not valid YAML at line \d+, column \d+"):
        recipes.load(path)
    dup = write(tmp_path / "dup.yaml", "train: {seed: 1}\ndata: {}\ntrain: {seed: 2}\n")
    with pytest.raises(ValueError, match=r"dup\.yaml: not valid YAML at line 3, column 1: duplicate key 'train'"):
        recipes.load(dup)


def test_unsafe_yaml_tag_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    path = write(tmp_path / "evil.yaml", f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ValueError, match=r"evil\.yaml: not valid YAML at line 1.*python/object/apply:os\.system"):
        recipes.load(path)
    with pytest.raises(ValueError, match="override"):
        recipes.apply_overrides({}, [f"train.seed=!!python/object/apply:os.system ['touch {marker}']"])
    assert not marker.exists()


BOMB = "".join(f"{x}: &{x} [{', '.join([f'*{p}' if p else 'lol'] * 9)}]\n"
               for p, x in zip(["", *"abcdefgh"], "abcdefghi", strict=True))


def test_alias_bomb_fails_fast_in_little_memory(tmp_path):
    import time
    import tracemalloc

    path = write(tmp_path / "bomb.yaml", BOMB)
    assert len(BOMB) < 600 and BOMB.count("*") == 72  # 9 ** 9 = 387 million strings once expanded
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"bomb\.yaml: not valid YAML at line \d+.*expands to more than 100,000"):
        recipes.load(path)
    elapsed, (_, peak) = time.perf_counter() - start, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1 and peak < 20e6, (elapsed, peak)
    with pytest.raises(ValueError, match="override.*expands to more than"):
        recipes.apply_overrides({}, ["data.x=" + BOMB.replace("\n", ", ").join("{}")])
    # aliases themselves are fine while the document stays small
    ok = write(tmp_path / "ok.yaml", "a: &base {x: 1, y: [1, 2]}\nb: *base\nc: [*base, *base]\n")
    assert recipes.read(ok)["c"] == [{"x": 1, "y": [1, 2]}] * 2


def test_recursive_alias_and_deep_nesting_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"loop\.yaml: not valid YAML at line 1.*alias refers to a node that contains"):
        recipes.read(write(tmp_path / "loop.yaml", "a: &a [1, *a]\n"))
    for depth in (65, 50_000):  # 50,000: far beyond Python's stack, which PyYAML's composer recurses on
        with pytest.raises(ValueError, match=r"deep\.yaml: not valid YAML at line 1.*nested deeper than 64 levels"):
            recipes.read(write(tmp_path / "deep.yaml", "a: " + "[" * depth + "]" * depth + "\n"))
    deep_alias = "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 40 + "*a" + "]" * 40 + "\n"
    with pytest.raises(ValueError, match="nested deeper than 64 levels"):  # 40 + 40 levels once expanded
        recipes.read(write(tmp_path / "deep.yaml", deep_alias))
    recipes.read(write(tmp_path / "deep.yaml", "a: " + "[" * 60 + "]" * 60 + "\n"))


def test_extends_chain_is_bounded(tmp_path):
    for i in range(1, 1500):
        write(tmp_path / f"r{i}.yaml", f"extends: r{i - 1}.yaml\nk{i}: {i}\n")
    write(tmp_path / "r0.yaml", "k0: 0\n")
    with pytest.raises(ValueError, match=r"'extends' chain longer than 32 files: .*r1499\.yaml -> .*r1498\.yaml -> "
                                         r"\.\.\. -> .*r1468\.yaml -> .*r1467\.yaml"):
        recipes.read(tmp_path / "r1499.yaml")
    assert recipes.read(tmp_path / "r31.yaml") == {f"k{i}": i for i in range(32)}  # 32 files: the longest chain


def test_missing_file_and_bad_overrides():
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        recipes.load("nowhere.yaml")
    for item in ("train.max_steps", "=3", "train..seed=1", ".seed=1"):
        with pytest.raises(ValueError, match="key.path=value"):
            recipes.apply_overrides({}, [item])
    with pytest.raises(ValueError, match=r"train\.max_steps is a value \(5\), not a section"):
        recipes.apply_overrides({"train": {"max_steps": 5}}, ["train.max_steps.x=1"])
    with pytest.raises(ValueError, match=r"override 'train.seed=\[1': not valid YAML"):
        recipes.apply_overrides({}, ["train.seed=[1"])


def test_overrides_set_nested_values_and_parse_yaml():
    raw = {"train": {"max_steps": 5}, "objective": {"type": "siddm"}}
    out = recipes.apply_overrides(raw, ["train.max_steps=7", "objective.afd_weight=5e-1", "optim.betas=[0.5, 0.9]",
                                        "objective.entropy=false"])
    assert out == {"train": {"max_steps": 7}, "objective": {"type": "siddm", "afd_weight": 0.5, "entropy": False},
                   "optim": {"betas": [0.5, 0.9]}}
    assert raw["train"]["max_steps"] == 5, "overrides must not modify their input"


@pytest.mark.parametrize("overrides, match", [
    (["generator.type=resnet"], "generator.type"),
    (["generator.widht=3"], "generator"),
    (["discriminator.heads=[classifier]"], "discriminator.heads"),
    (["diffusion.schedule=linear"], "diffusion.schedule"),
    (["diffusion.num_steps=0"], "num_steps"),
    (["data.type=cifar"], "data.type"),
    (["data.per_mode=0"], "data.per_mode"),
])
def test_bad_built_sections_are_named(overrides, match, tmp_path):
    from gdiff.trainer import Trainer

    recipe = recipes.from_dict(recipes.apply_overrides(GOOD, overrides))
    with pytest.raises(ValueError, match=match):
        Trainer(recipe, tmp_path)
