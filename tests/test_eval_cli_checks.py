"""``python -m gdiff.eval`` checks its output, weights and cache before drawing a single sample: a bad one ends
with one ``error:`` line naming it, exit status 2, no sampling, and (crafted weights) no code run."""

from __future__ import annotations

import sys

import pytest

import gdiff.eval.__main__ as eval_cli
from tests.test_eval_cli import IMAGE_RECIPE, MIXTURE_RECIPE, TINY_EXTRACTOR, export
from tests.test_eval_safe_loading import crafted


@pytest.fixture
def no_sampling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("samples were drawn before the check")

    monkeypatch.setattr(eval_cli, "generate", refuse)


def fails_cleanly(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        eval_cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("out,message", [
    ("result.txt", "--out {out}: unknown format '.txt'; use .json"),
    ("folder.json", "--out {out}: is an existing folder"),
    ("a_file/result.json", "--out: cannot write in {tmp}/a_file: {tmp}/a_file is not a folder"),
])
def test_outputs_are_checked_before_sampling(tmp_path, capsys, no_sampling, out, message):
    run_dir = export(tmp_path / "mog", MIXTURE_RECIPE)
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "a_file").write_text("")
    err = fails_cleanly([str(run_dir), "--num", "10", "--out", str(tmp_path / out)], capsys)
    assert message.format(out=tmp_path / out, tmp=tmp_path) in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_an_unwritable_output_folder_is_refused_before_sampling(tmp_path, capsys, no_sampling):
    run_dir = export(tmp_path / "mog", MIXTURE_RECIPE)
    err = fails_cleanly([str(run_dir), "--num", "10", "--out", "/proc/result.json"], capsys)
    assert "--out: cannot write in /proc (" in err


def test_crafted_weights_and_bad_cache_folders_are_refused_before_sampling(tmp_path, capsys, no_sampling):
    run_dir = export(tmp_path / "run", IMAGE_RECIPE)
    marker = tmp_path / "marker-code-ran"
    evil = crafted(tmp_path / "inception.pth", marker)
    err = fails_cleanly([str(run_dir), "--metrics", "fid", "--inception-weights", str(evil),
                         "--cache-dir", str(tmp_path / "cache")], capsys)
    assert f"--inception-weights: {evil} is not a plain weights file" in err and not marker.exists()
    (tmp_path / "a_file").write_text("")
    err = fails_cleanly([str(run_dir), "--metrics", "fid", "--feature-extractor", TINY_EXTRACTOR,
                         "--cache-dir", str(tmp_path / "a_file" / "cache")], capsys)
    assert "--cache-dir (the statistics cache): cannot write in" in err
