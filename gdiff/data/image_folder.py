"""A folder of image files (PNG, JPEG, WebP; searched recursively), optionally one class per sub-folder.

CelebA-HQ 256, LSUN Church 256 (exported from LMDB) and users' own data arrive this way. The file list is
built once (sorted paths, hidden files and folders skipped); images are decoded, resized on the shorter side
and centre-cropped to ``resolution`` (:func:`gdiff.data.images.fit_square`) in the DataLoader workers, so
nothing but the list lives in memory. With ``class_folders: true`` the classes are the sorted names of the
sub-folders of ``root`` that hold images (class k = k-th name), images under a class folder at any depth
belong to it, and the labels condition the networks (``num_classes`` = number of such folders).

Every file is checked when the folder is indexed, before a run directory is written
(:func:`gdiff.data.images.check_image`: header, PNG chunk CRCs, the JPEG end marker): with
``on_bad_file: error`` (default) a file that cannot be decoded is a :class:`CorruptDataError` naming it, with
``on_bad_file: skip`` it is left out with a warning. Pixel modes are converted by
:func:`gdiff.data.images.to_rgb` (16-bit scaled to 8, alpha composited on white).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gdiff.data.images import (
    IMAGE_EXTENSIONS,
    CorruptDataError,
    check_bool,
    check_choice,
    check_image,
    check_int,
    data_root,
    load_image,
)
from gdiff.data.source import DataSource, MissingDataError

ON_BAD_FILE = ("error", "skip")
_WHAT = ("image files (.png, .jpg, .jpeg, .webp) at any depth, with class_folders: true one sub-folder per "
         "class (root/<class>/...); see docs/data.md for CelebA-HQ 256 and LSUN Church 256")


def find_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (recursive, extensions case-insensitive, hidden entries skipped), sorted."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder, f) for f in files if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


class ImageFolder(DataSource):
    """Images under ``root`` as uint8 [3, resolution, resolution]; ``labels`` [N] int64 with class folders."""

    def __init__(self, root: str | os.PathLike | None = None, resolution: int | None = None,
                 class_folders: bool = False, hflip: bool = True, on_bad_file: str = "error",
                 name: str = "image_folder") -> None:
        self.root = data_root(root, _WHAT)
        if resolution is None:
            raise ValueError("data.resolution is required: the side of the square images (e.g. 256)")
        self.resolution = check_int("resolution", resolution, 1)
        self.hflip = check_bool("hflip", hflip)
        self.name = name
        skip = check_choice("on_bad_file", on_bad_file, ON_BAD_FILE) == "skip"
        self.files = find_images(self.root)
        if not self.files:
            raise MissingDataError(f"no images under data.root = {str(self.root)!r}; it should hold {_WHAT}")
        bad = {path: why for path in self.files if (why := check_image(path)) is not None}
        if bad:
            listed = "; ".join(f"{path} ({why})" for path, why in list(bad.items())[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            if not skip:
                raise CorruptDataError(f"{len(bad)} of {len(self.files)} image files under data.root cannot be "
                                       f"decoded: {listed}{more}; remove them or set data.on_bad_file: skip")
            warnings.warn(f"data.on_bad_file: skip: leaving out {len(bad)} of {len(self.files)} image files that "
                          f"cannot be decoded: {listed}{more}", stacklevel=2)
            self.files = [path for path in self.files if path not in bad]
            if not self.files:
                raise MissingDataError(f"no decodable images under data.root = {str(self.root)!r}")
        self.data_shape = (3, self.resolution, self.resolution)
        self.classes: list[str] = []
        if check_bool("class_folders", class_folders):
            parts = [path.relative_to(self.root).parts for path in self.files]
            loose = [str(self.files[i]) for i, p in enumerate(parts) if len(p) == 1]
            if loose:
                raise ValueError(f"data.class_folders is true but {len(loose)} images lie directly in data.root "
                                 f"(e.g. {loose[0]}); put every image in a class sub-folder root/<class>/")
            self.classes = sorted({p[0] for p in parts})
            index = {c: k for k, c in enumerate(self.classes)}
            self.labels: Tensor | None = torch.tensor([index[p[0]] for p in parts], dtype=torch.int64)
            self.num_classes = len(self.classes)
        else:
            self.labels = None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        label = -1 if self.labels is None else int(self.labels[index])
        return load_image(self.files[index], self.resolution), label

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "root": str(self.root), "classes": len(self.classes)}
