"""A folder of image files (PNG, JPEG, WebP; searched recursively), optionally one class per sub-folder.

CelebA-HQ 256, LSUN Church 256 (exported from LMDB) and users' own data arrive this way. The file list is
built once (sorted paths, hidden files and folders skipped); images are decoded, resized on the shorter side
and centre-cropped to ``resolution`` (:func:`gdiff.data.images.fit_square`) in the DataLoader workers, so
nothing but the list lives in memory. With ``class_folders: true`` the classes are the sorted names of the
sub-folders of ``root`` that hold images (class k = k-th name), images under a class folder at any depth
belong to it, and the labels condition the networks (``num_classes`` = number of such folders).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gdiff.data.images import IMAGE_EXTENSIONS, check_bool, check_int, data_root, load_image
from gdiff.data.source import DataSource, MissingDataError

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
                 class_folders: bool = False, hflip: bool = True, name: str = "image_folder") -> None:
        self.root = data_root(root, _WHAT)
        if resolution is None:
            raise ValueError("data.resolution is required: the side of the square images (e.g. 256)")
        self.resolution = check_int("resolution", resolution, 1)
        self.hflip = check_bool("hflip", hflip)
        self.name = name
        self.files = find_images(self.root)
        if not self.files:
            raise MissingDataError(f"no images under data.root = {str(self.root)!r}; it should hold {_WHAT}")
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
