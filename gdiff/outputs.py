"""Output paths of the command-line tools, checked before anything is computed.

``python -m gdiff.eval`` and ``python -m gdiff.sample`` call :func:`check_output` on their ``--out`` (or default
output) right after parsing, so that an unknown format or an unwritable place ends the command with one
``error:`` line before minutes of sampling, not after.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path


def writable_folder(folder: str | Path, what: str) -> Path:
    """Check that files can be created in ``folder`` or, when it does not exist yet, in its nearest existing
    ancestor (where it would be made); return ``folder``. The check creates and removes one empty temporary
    file there (permission bits do not tell: root, ACLs, read-only mounts). ValueError naming ``what`` else."""
    folder = Path(folder).expanduser()
    probe_dir = folder
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise ValueError(f"{what}: cannot write in {folder}: {probe_dir} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".gdiff-write-check-", dir=probe_dir)
    except OSError as err:
        made = "" if probe_dir == folder else f", where {folder} would be made"
        raise ValueError(f"{what}: cannot write in {probe_dir} ({err.strerror or err}){made}") from err
    os.close(fd)
    os.unlink(probe)
    return folder


def check_output(path: str | Path, suffixes: Sequence[str], folder: bool = False, what: str = "--out") -> str:
    """The format of output ``path``: its lower-case suffix from ``suffixes`` (e.g. ``(".json",)``), or ``""``
    for a folder (a path without a suffix, allowed when ``folder``).

    Raises ValueError naming ``what`` and the path when the suffix is unknown, a file output is an existing
    folder or a folder output an existing file, or the place cannot be written (:func:`writable_folder`).
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in suffixes and not (folder and not suffix):
        known = ", ".join(suffixes) + (", or a folder path without a suffix" if folder else "")
        raise ValueError(f"{what} {path}: unknown format {suffix or '(no suffix)'!r}; use {known}")
    if suffix and path.is_dir():
        raise ValueError(f"{what} {path}: is an existing folder, not a {suffix} file")
    if not suffix and path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path}: is an existing file, not a folder")
    writable_folder(path if not suffix else path.parent, what)
    return suffix
