"""Training images decoded once per fit (``env.image_cache_mb``).

Without a cache every epoch decodes each training image (PIL) and resizes it again, on the
same cores the model trains on. :class:`ImageCache` decodes and resizes each distinct image
path once, when the training dataset is built, and keeps the result as a uint8 tensor
``(3, size, size)`` (the output of :meth:`ImageProcessor.build_resize_crop`): the first
images in memory up to a byte budget, the rest in one uint8 file on disk (a numpy memmap in
a temporary folder, removed by :meth:`close` at the end of the fit). The dataset then applies
the optional training augmentation and the float conversion + normalisation per access, the
same functions as without a cache, so the tensors are identical.

DataLoader workers: the cache is filled in the main process before any loader starts, so
workers only read it. Forked workers (Linux's default) share the memory part copy-on-write
and the disk part through the page cache; with spawn, the memory part is pickled to each
worker and the disk file reopened by path.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional

import numpy as np
import torch

DISK_MARGIN = 1 << 30  # free space left on the temporary folder's disk
FILL_CHUNK = 64  # images decoded per round while filling


def _remove(folder: str, owner: int) -> None:
    if os.getpid() == owner:  # never from a forked DataLoader worker
        shutil.rmtree(folder, ignore_errors=True)


class ImageCache:
    """Decoded training images, uint8 ``(3, size, size)`` each, looked up by path.

    Args:
        paths: Image paths to hold (duplicates and None are dropped).
        decode: path -> uint8 tensor ``(3, size, size)``; the dataset's own decode, so
            cached and uncached reads give the same pixels.
        size: Side of the decoded images.
        memory_bytes: Bytes kept in memory; the images past it go to disk.
        folder: Parent of the disk part's temporary folder (the system's temp folder when None).
        threads: Images decoded at once (PIL releases the GIL while decoding and resizing).
    """

    def __init__(self, paths: Iterable[Optional[str]], decode: Callable[[str], torch.Tensor], size: int,
                 memory_bytes: int, folder: Optional[str] = None, threads: Optional[int] = None):
        start = time.time()
        unique = list(dict.fromkeys(p for p in paths if p is not None))
        per_image = 3 * size * size
        n_memory = min(len(unique), max(0, int(memory_bytes)) // per_image)
        n_disk = len(unique) - n_memory
        self.folder: Optional[str] = None
        self.disk_path: Optional[str] = None
        if n_disk:
            parent = folder or tempfile.gettempdir()
            room = max(0, shutil.disk_usage(parent).free - DISK_MARGIN) // per_image
            n_disk = min(n_disk, room)  # the rest is not cached: decoded at each read
        self.slots = {p: k for k, p in enumerate(unique[: n_memory + n_disk])}
        self.size, self.n_memory, self.n_disk = int(size), n_memory, n_disk
        self.n_uncached = len(unique) - n_memory - n_disk
        self.memory = torch.empty((n_memory, 3, size, size), dtype=torch.uint8)
        self._disk: Optional[np.memmap] = None
        if n_disk:
            self.folder = tempfile.mkdtemp(prefix="mmtricks-image-cache-", dir=folder)
            self._finalizer = weakref.finalize(self, _remove, self.folder, os.getpid())
            self.disk_path = os.path.join(self.folder, "images.u8")
            self._disk = np.memmap(self.disk_path, dtype=np.uint8, mode="w+", shape=(n_disk, 3, size, size))
        threads = threads or min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
        items = list(self.slots.items())
        try:
            with ThreadPoolExecutor(max(1, threads)) as pool:
                for begin in range(0, len(items), FILL_CHUNK):  # bounded: a chunk of decoded images at a time
                    chunk = items[begin:begin + FILL_CHUNK]
                    for (_, k), image in zip(chunk, pool.map(decode, [p for p, _ in chunk])):
                        self._put(k, image)
        except BaseException:
            self.close()
            raise
        if self._disk is not None:
            self._disk.flush()
            self._disk = np.memmap(self.disk_path, dtype=np.uint8, mode="r", shape=(n_disk, 3, size, size))
        self.seconds = time.time() - start

    def _put(self, k: int, image: torch.Tensor) -> None:
        if image.shape != (3, self.size, self.size) or image.dtype != torch.uint8:
            raise ValueError(f"decode gave {tuple(image.shape)} {image.dtype}; expected (3, {self.size}, "
                             f"{self.size}) uint8")
        if k < self.n_memory:
            self.memory[k] = image
        else:
            self._disk[k - self.n_memory] = image.numpy()

    def __len__(self) -> int:
        return len(self.slots)

    def get(self, path: str) -> Optional[torch.Tensor]:
        """The decoded image (a new tensor, free to modify), or None when ``path`` is not cached."""
        k = self.slots.get(path)
        if k is None:
            return None
        if k < self.n_memory:
            return self.memory[k].clone()
        if self._disk is None:  # reopened lazily after pickling (spawned workers)
            self._disk = np.memmap(self.disk_path, dtype=np.uint8, mode="r",
                                   shape=(self.n_disk, 3, self.size, self.size))
        return torch.from_numpy(np.array(self._disk[k - self.n_memory]))

    def summary(self) -> str:
        """One log line: how many images, where, how long the fill took."""
        mib = 3 * self.size * self.size / 2**20
        parts = [f"{self.n_memory} in memory ({self.n_memory * mib:.1f} MiB)"]
        if self.n_disk:
            parts.append(f"{self.n_disk} on disk ({self.n_disk * mib:.1f} MiB in {self.folder})")
        if self.n_uncached:
            parts.append(f"{self.n_uncached} not cached (no disk room: decoded at each read)")
        return (f"image cache: {len(self)} training images decoded once at {self.size}x{self.size} in "
                f"{self.seconds:.1f}s: " + ", ".join(parts) + " (env.image_cache_mb)")

    def close(self) -> None:
        """Remove the disk part (the memory part goes with the object)."""
        self._disk = None
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_disk"] = None  # a memmap would be pickled as a copy of its data
        state.pop("_finalizer", None)  # only the process that made the folder removes it
        return state
