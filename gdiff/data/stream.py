"""The endless, resumable, per-process batch stream over a data source.

Epoch e is a permutation of the data set drawn from ``seed`` and e alone, the same on every process; process
r of W takes every W-th index of it (``perm[r::W]``, truncated so that all shards have the same length) and
cuts its shard into batches of ``batch`` (the incomplete tail is dropped). Batch k of the stream is therefore
a pure function of (seed, r, W, batch, k): the stream's whole state is the count of batches consumed, which
the Trainer saves in every checkpoint, so a resumed run sees exactly the batches of an uninterrupted one.
Random horizontal flips are drawn from the same key, so they resume exactly too.

Sources that live in memory are indexed on the device; the others are read by a DataLoader with workers,
pinned memory and one persistent iterator over an endless batch sampler (so workers are never restarted
between epochs). Raw batches go to the device as they are (uint8 for images) and become model space there.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from gdiff.data.source import DataSource


def _key(*parts: int) -> int:
    """A 63-bit seed from small non-negative integers (for torch.Generator.manual_seed)."""
    key = 0
    for part in parts:
        key = (key * 1_000_003 + int(part)) % (2**63 - 1)
    return key


class BatchStream:
    """``next(stream) -> (x [batch, *data_shape] float32 model space on device, labels [batch] long or None)``.

    Labels are returned only for class-conditional sources (``num_classes > 0``).
    """

    def __init__(self, source: DataSource, batch: int, *, seed: int = 0, rank: int = 0, world: int = 1,
                 device: torch.device | str = "cpu", num_workers: int = 0, channels_last: bool = False) -> None:
        self.source, self.batch, self.seed, self.rank, self.world = source, batch, seed, rank, world
        self.device = torch.device(device)
        self.num_workers, self.channels_last = num_workers, channels_last
        self.shard = len(source) // world
        if self.shard < batch:
            raise ValueError(f"the data set ({source.name}, {len(source)} examples) is smaller than one batch per "
                             f"process ({batch} x {world} processes); lower train.batch_size")
        self.batches_per_epoch = self.shard // batch
        self.consumed = 0
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)
        self._iterator: Iterator | None = None
        if source.in_memory:
            self._raw = source.raw.to(self.device)
            labelled = source.num_classes > 0 and source.labels is not None
            self._labels = source.labels.to(self.device).long() if labelled else None

    # ------------------------------------------------------------------------------------------ order
    def indices(self, k: int) -> Tensor:
        """Data-set indices [batch] of this process's k-th batch."""
        epoch, i = divmod(k, self.batches_per_epoch)
        if epoch != self._epoch:
            perm = torch.randperm(len(self.source), generator=torch.Generator().manual_seed(_key(self.seed, epoch)))
            self._epoch, self._order = epoch, perm[self.rank: self.shard * self.world: self.world]
        return self._order[i * self.batch: (i + 1) * self.batch]

    def _flip_mask(self, k: int) -> Tensor:
        gen = torch.Generator().manual_seed(_key(self.seed, 1 + self.rank, self.world, k))
        return torch.rand(self.batch, generator=gen) < 0.5

    # ------------------------------------------------------------------------------------------ batches
    def _raw_batch(self, k: int) -> tuple[Tensor, Tensor | None]:
        if self.source.in_memory:
            idx = self.indices(k).to(self.device)
            return self._raw[idx], None if self._labels is None else self._labels[idx]
        if self._iterator is None:
            self._iterator = iter(self._loader(k))
        raw, labels = next(self._iterator)
        raw = raw.to(self.device, non_blocking=True)
        if self.source.num_classes > 0:
            return raw, labels.to(self.device, non_blocking=True).long()
        return raw, None

    def _loader(self, start: int) -> torch.utils.data.DataLoader:
        workers = self.num_workers
        return torch.utils.data.DataLoader(
            self.source, batch_sampler=_EndlessBatches(self, start), num_workers=workers,
            pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
            generator=torch.Generator().manual_seed(_key(self.seed, self.rank)))  # not the global RNG: resumes exactly

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> tuple[Tensor, Tensor | None]:
        k = self.consumed
        raw, labels = self._raw_batch(k)
        x = self.source.to_model(raw)
        if self.source.hflip:
            mask = self._flip_mask(k).to(x.device).view(-1, *([1] * (x.ndim - 1)))
            x = torch.where(mask, x.flip(-1), x)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        self.consumed += 1
        return x, labels

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, int]:
        return {"consumed": self.consumed, "batch": self.batch, "world": self.world}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if (state["batch"], state["world"]) != (self.batch, self.world):
            raise ValueError(f"the checkpoint's batch stream has {state['world']} process(es) x batch "
                             f"{state['batch']}; this run has {self.world} x {self.batch}. Resume with the same "
                             f"number of processes and train.batch_size / train.micro_batch")
        self.consumed = int(state["consumed"])
        self._iterator = None  # the loader restarts at the restored position


class _EndlessBatches(torch.utils.data.Sampler):
    """Lists of indices of batches start, start + 1, ... of a stream, for ever (a DataLoader batch_sampler)."""

    def __init__(self, stream: BatchStream, start: int) -> None:
        self.stream, self.start = stream, start

    def __iter__(self) -> Iterator[list[int]]:
        k = self.start
        while True:
            yield self.stream.indices(k).tolist()
            k += 1
