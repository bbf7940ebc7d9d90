"""gdiff.outputs: an output's format and writability are known before anything is computed."""

from __future__ import annotations

import os
import sys

import pytest

from gdiff.outputs import check_output, writable_folder

SAMPLE_FORMATS = (".npz", ".png", ".jpg", ".jpeg", ".webp")


def test_known_formats_and_folders(tmp_path):
    assert check_output(tmp_path / "r.json", (".json",)) == ".json"
    assert check_output(tmp_path / "GRID.PNG", SAMPLE_FORMATS, folder=True) == ".png"
    assert check_output(tmp_path / "new" / "deeper" / "pngs", SAMPLE_FORMATS, folder=True) == ""
    assert check_output(tmp_path, SAMPLE_FORMATS, folder=True) == ""  # an existing folder
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the probes are gone, nothing was created


@pytest.mark.parametrize("name,folder,message", [
    ("x.tiff", True, "--out {p}: unknown format '.tiff'; use .npz, .png, .jpg, .jpeg, .webp, or a folder path"),
    ("x", False, "--out {p}: unknown format '(no suffix)'; use .npz"),
    ("x.txt", False, "--out {p}: unknown format '.txt'"),
])
def test_unknown_formats_name_the_flag(tmp_path, name, folder, message):
    path = tmp_path / name
    with pytest.raises(ValueError) as err:
        check_output(path, SAMPLE_FORMATS, folder=folder)
    assert str(err.value).startswith(message.format(p=path))


def test_existing_things_of_the_wrong_kind(tmp_path):
    (tmp_path / "d.npz").mkdir()
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="d.npz: is an existing folder"):
        check_output(tmp_path / "d.npz", SAMPLE_FORMATS)
    with pytest.raises(ValueError, match="is an existing file, not a folder"):
        check_output(tmp_path / "f", SAMPLE_FORMATS, folder=True)
    with pytest.raises(ValueError, match=f"--out: cannot write in {tmp_path / 'f' / 'sub'}: {tmp_path / 'f'} is not"):
        check_output(tmp_path / "f" / "sub" / "r.json", (".json",))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_a_folder_nobody_can_write():
    with pytest.raises(ValueError, match=r"RUN_DIR: cannot write in /proc \("):
        check_output("/proc/eval.json", (".json",), what="RUN_DIR")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes in read-only folders")
def test_a_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="cannot write in"):
            writable_folder(locked / "sub", "--cache-dir")
    finally:
        locked.chmod(0o700)
