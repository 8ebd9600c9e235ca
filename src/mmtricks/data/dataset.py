"""torch Dataset over an EncodedTable, and the collate that pads text and stacks images."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .images import load_image
from .preprocessor import EncodedTable


class TableDataset(Dataset):
    """One item per row: a dict of tensors keyed by input name (see :func:`collate`).

    An image goes ``path -> load_image -> resize/crop to uint8 (3, S, S)`` (or the
    :class:`~mmtricks.data.image_cache.ImageCache` when one is attached) ``-> image_augment
    -> float + normalise``; both ways use the image processor's same functions.

    Args:
        image: the fitted ImageProcessor (None without image columns).
        text: the TextProcessor that joins a row's text columns into one sequence.
        row_hook: optional training-time transform of a row's raw pieces (numbers,
            categories, text columns, image paths) before images are read, e.g.
            modality dropout. Never set for prediction.
        image_augment: optional training-time transform ``(image, key)`` of an image as uint8
            ``(3, S, S)`` (cached or not) -> uint8 ``(3, S, S)``, applied before normalising:
            the place for random image augmentation; ``key`` is ``(epoch, row, column)``, for
            draws that repeat in a resumed fit. Never set for prediction.
    """

    def __init__(self, table: EncodedTable, image=None, text=None, row_hook: Optional[Callable[..., dict]] = None,
                 image_augment: Optional[Callable] = None):
        self.table = table
        self.image_size = image.size if image is not None else 0
        self.resize_crop = image.build_resize_crop() if image is not None else None
        self.normalise = image.build_normalise() if image is not None else None
        self.text = text  # TextProcessor: joins the row's text columns into one sequence
        self.row_hook = row_hook
        self.image_augment = image_augment
        self.image_cache = None  # ImageCache, see cache_images
        self.weights: Optional[np.ndarray] = None  # training rows' sample weights (mean 1), when given

    def decode(self, path: str) -> torch.Tensor:
        """The image at ``path`` as uint8 (3, S, S): read, resized, centre cropped."""
        return self.resize_crop(load_image(path)).contiguous()

    def cache_images(self, memory_bytes: int, folder: Optional[str] = None):
        """Decode every image of the table once now (before any loader starts); later reads use it.

        Returns the :class:`~mmtricks.data.image_cache.ImageCache` (None without image columns).
        """
        from .image_cache import ImageCache

        if self.table.image_paths is None:
            return None
        self.close()
        paths = (p for row in self.table.image_paths for p in row)
        self.image_cache = ImageCache(paths, self.decode, self.image_size, memory_bytes, folder)
        return self.image_cache

    def close(self) -> None:
        """Drop the image cache and its files on disk (the end of a fit)."""
        if self.image_cache is not None:
            self.image_cache.close()
            self.image_cache = None

    def read_image(self, path: str, key: tuple = ()) -> torch.Tensor:
        """float32 (3, S, S), normalised: from the cache when it holds ``path``, else from the file."""
        image = self.image_cache.get(path) if self.image_cache is not None else None
        if image is None:
            image = self.decode(path)
        if self.image_augment is not None:
            image = self.image_augment(image, key)  # uint8 (3, S, S) -> uint8 (3, S, S)
        return self.normalise(image)

    def __len__(self) -> int:
        return len(self.table)

    def raw_row(self, i: int) -> dict:
        t = self.table
        return {
            "num": t.num[i].copy(),
            "num_missing": t.num_missing[i].copy(),
            "cat": t.cat[i].copy(),
            "text": list(t.text_ids[i]) if t.text_ids is not None else None,
            "images": list(t.image_paths[i]) if t.image_paths is not None else None,
        }

    def __getitem__(self, i: int) -> dict:
        epoch, i = divmod(i, len(self))  # EpochSampler passes epoch * n + row
        row = self.raw_row(i)
        if self.row_hook is not None:
            row = self.row_hook(row, epoch, i)  # its random choices derive from (seed, epoch, row)
        item = {
            "row": torch.tensor(epoch * len(self) + i),  # seeds the training hooks' draws (train/tricks/hooks.py)
            "num": torch.from_numpy(row["num"]),
            "num_missing": torch.from_numpy(row["num_missing"]),
            "cat": torch.from_numpy(row["cat"]),
        }
        if row["text"] is not None:
            item["text_ids"] = torch.tensor(self.text.join(row["text"]), dtype=torch.long)
            item["text_missing"] = torch.tensor(not any(len(c) for c in row["text"]))
        if row["images"] is not None:
            images, missing = [], []
            for j, path in enumerate(row["images"]):
                if path is None:
                    images.append(torch.zeros(3, self.image_size, self.image_size))
                    missing.append(True)
                else:
                    images.append(self.read_image(path, (epoch, i, j)))
                    missing.append(False)
            item["image"] = torch.stack(images)  # (n_image_columns, 3, H, W)
            item["image_missing"] = torch.tensor(missing)
        if self.table.labels is not None:
            item["label"] = torch.as_tensor(self.table.labels[i])
        if self.weights is not None:
            item["weight"] = torch.tensor(self.weights[i], dtype=torch.float32)
        return item

    def collate(self, items: list[dict]) -> dict:
        """Stack tensors; pad token ids to the batch's longest row and build the mask."""
        batch = {k: torch.stack([it[k] for it in items]) for k in items[0] if k != "text_ids"}
        if "text_ids" in items[0]:
            longest = max(1, max(len(it["text_ids"]) for it in items))
            ids = torch.full((len(items), longest), self.text.pad_id, dtype=torch.long)
            mask = torch.zeros((len(items), longest), dtype=torch.long)
            for r, it in enumerate(items):
                n = len(it["text_ids"])
                ids[r, :n] = it["text_ids"]
                mask[r, :n] = 1
            batch["text_ids"], batch["text_mask"] = ids, mask
        return batch


class EpochSampler(torch.utils.data.Sampler):
    """Shuffled order fixed by (seed, epoch), so a resumed fit sees the same batches.

    With several processes (DDP), ``rank`` takes every ``world``-th index of the same
    permutation, cut to an equal count per rank. ``skip`` drops the first indices of this
    rank's share of the current epoch (the batches a killed fit had already trained on).
    The method is not called ``set_epoch`` on purpose: Fabric's dataloader calls
    ``set_epoch(number of iterations so far)`` on samplers, which would undo a resume.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.epoch, self.skip = n, seed, 0, 0
        self.rank, self.world = rank, world

    def start_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __iter__(self):
        gen = torch.Generator()
        gen.manual_seed(self.seed * 100_003 + self.epoch)
        share = self.n // self.world
        order = torch.randperm(self.n, generator=gen)[self.rank::self.world][:share][self.skip:]
        # epoch * n + row: the dataset reads the epoch from the index (DataLoader workers are
        # separate processes, so an attribute set on the sampler's side would not reach them)
        return iter((order + self.epoch * self.n).tolist())

    def __len__(self) -> int:
        return self.n // self.world - self.skip


class ReplayBatches:
    """A loader whose batches never change between passes (validation: no augmentation,
    no shuffling), read once and then replayed from memory.

    The first complete pass keeps its batches while their tensors total at most
    ``max_bytes``; later passes replay them instead of decoding images and tokenizing
    text again. Over the budget (or ``max_bytes=0``) every pass reads the loader.
    """

    def __init__(self, loader, max_bytes: int):
        self.loader, self.max_bytes = loader, max_bytes
        self.batches: Optional[list[dict[str, torch.Tensor]]] = None

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        if self.batches is not None:
            yield from self.batches
            return
        kept: Optional[list] = [] if self.max_bytes > 0 else None
        size = 0
        for batch in self.loader:
            if kept is not None:
                size += sum(t.numel() * t.element_size() for t in batch.values())
                if size <= self.max_bytes:
                    kept.append(batch)
                else:
                    kept = None
            yield batch
        self.batches = kept  # reached only when the pass ran to its end


def make_loader(dataset: TableDataset, batch_size: int, shuffle: bool, num_workers: int = 0,
                seed: int = 0, drop_last: bool = False) -> torch.utils.data.DataLoader:
    sampler = EpochSampler(len(dataset), seed) if shuffle else None
    # A generator of its own: without one, each iter() draws the workers' base seed from the
    # global torch RNG, so a resumed fit (which starts iterators at other points) would drift.
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        collate_fn=dataset.collate, drop_last=drop_last, persistent_workers=num_workers > 0,
        generator=generator,
    )


