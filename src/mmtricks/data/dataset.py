"""torch Dataset over an EncodedTable, and the collate that pads text and stacks images."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .preprocessor import EncodedTable


def load_image(path: str):
    """Open an image file as RGB, with a clear error naming the file when it can't be read."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"Could not read image '{path}': {exc}") from exc


class TableDataset(Dataset):
    """One item per row: a dict of tensors keyed by input name (see :func:`collate`)."""

    def __init__(self, table: EncodedTable, image_transform: Optional[Callable] = None,
                 image_size: int = 224, pad_id: int = 0):
        self.table = table
        self.image_transform = image_transform
        self.image_size = image_size
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict:
        t = self.table
        item = {
            "num": torch.from_numpy(t.num[i]),
            "num_missing": torch.from_numpy(t.num_missing[i]),
            "cat": torch.from_numpy(t.cat[i]),
        }
        if t.text_ids is not None:
            item["text_ids"] = torch.tensor(t.text_ids[i], dtype=torch.long)
        if t.image_paths is not None:
            images, missing = [], []
            for path in t.image_paths[i]:
                if path is None:
                    images.append(torch.zeros(3, self.image_size, self.image_size))
                    missing.append(True)
                else:
                    images.append(self.image_transform(load_image(path)))
                    missing.append(False)
            item["image"] = torch.stack(images)  # (n_image_columns, 3, H, W)
            item["image_missing"] = torch.tensor(missing)
        if t.labels is not None:
            item["label"] = torch.as_tensor(t.labels[i])
        return item

    def collate(self, items: list[dict]) -> dict:
        """Stack tensors; pad token ids to the batch's longest row and build the mask."""
        batch = {k: torch.stack([it[k] for it in items]) for k in items[0] if k != "text_ids"}
        if "text_ids" in items[0]:
            longest = max(1, max(len(it["text_ids"]) for it in items))
            ids = torch.full((len(items), longest), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(items), longest), dtype=torch.long)
            for r, it in enumerate(items):
                n = len(it["text_ids"])
                ids[r, :n] = it["text_ids"]
                mask[r, :n] = 1
            batch["text_ids"], batch["text_mask"] = ids, mask
        return batch


def make_loader(dataset: TableDataset, batch_size: int, shuffle: bool, num_workers: int = 0,
                seed: int = 0, drop_last: bool = False) -> torch.utils.data.DataLoader:
    gen = torch.Generator()
    gen.manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
        collate_fn=dataset.collate, generator=gen, drop_last=drop_last,
        persistent_workers=num_workers > 0,
    )


