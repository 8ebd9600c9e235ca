"""Build the tiny ``emoji`` image + text + tabular demo data set.

The data set shipped in ``src/mmtricks/demo/data/emoji`` is regenerated
deterministically from the npm package ``emoji-datasource-google@16.0.0``
(metadata from Cal Henderson's "emoji-data" project, MIT; 64x64 images from
Google's Noto Emoji, Apache-2.0). Get the source with::

    npm pack emoji-datasource-google@16.0.0 && tar xzf emoji-datasource-google-16.0.0.tgz

which extracts it to ``./package``. Then run::

    python scripts/build_demo_data.py --src package

Requires pandas, pyarrow, scikit-learn and Pillow. The Apache-2.0 licence text
is copied from ``/usr/share/common-licenses/Apache-2.0`` (Debian/Ubuntu) unless
``--apache-license`` points elsewhere.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

import pandas as pd
from PIL import Image
from sklearn.model_selection import train_test_split

PACKAGE = "emoji-datasource-google"
VERSION = "16.0.0"
N_ROWS = 400
TEST_SIZE = 0.2
SEED = 0
MAX_BYTES = 2_000_000  # whole data set folder must stay under this
LABEL = "category"
TEXT_COLUMNS = ["name", "keywords"]
IMAGE_COLUMNS = ["image"]
# Feature columns whose value -> label mapping is checked for leaks.
CHECK_COLUMNS = [
    "added_in",
    "n_codepoints",
    "has_skin_tones",
    "has_img_apple",
    "has_img_twitter",
    "has_img_facebook",
]
LEAK_THRESHOLD = 0.95

COLUMN_DOCS = {
    "image": "image path relative to this folder (`images/<file>.png`, 64x64 RGB on white)",
    "name": "text: Unicode name of the emoji, lower-cased",
    "keywords": "text: emoji-data short names, `_`/`-` replaced by spaces, space-joined",
    "added_in": "numeric: emoji version the emoji was added in (e.g. 0.6, 13.0)",
    "n_codepoints": "numeric: number of code points in the emoji's sequence",
    "has_skin_tones": 'categorical "yes"/"no": emoji has skin-tone variations',
    "has_img_apple": 'categorical "yes"/"no": an Apple image exists upstream',
    "has_img_twitter": 'categorical "yes"/"no": a Twitter image exists upstream',
    "has_img_facebook": 'categorical "yes"/"no": a Facebook image exists upstream',
    "category": "label: emoji category (9 classes)",
}


def yes_no(value) -> str:
    return "yes" if value else "no"


def load_records(src: Path) -> list[dict]:
    emoji = json.loads((src / "emoji.json").read_text(encoding="utf-8"))
    img_dir = src / "img" / "google" / "64"
    rows = []
    for e in emoji:
        if not e.get("has_img_google") or e["category"] == "Component":
            continue
        if not (img_dir / e["image"]).is_file():
            continue
        name = e.get("name")
        short_names = e.get("short_names") or []
        keywords = " ".join(s.replace("_", " ").replace("-", " ") for s in short_names)
        rows.append(
            {
                "image": f"images/{e['image']}",
                "name": name.lower() if name else None,
                "keywords": keywords or None,
                "added_in": float(e["added_in"]) if e.get("added_in") else None,
                "n_codepoints": len(e["unified"].split("-")),
                "has_skin_tones": yes_no(e.get("skin_variations")),
                "has_img_apple": yes_no(e.get("has_img_apple")),
                "has_img_twitter": yes_no(e.get("has_img_twitter")),
                "has_img_facebook": yes_no(e.get("has_img_facebook")),
                "category": e["category"],
                "_src": img_dir / e["image"],
                "_order": e["sort_order"],
            }
        )
    rows.sort(key=lambda r: (r["_order"], r["image"]))
    return rows


def sample(rows: list[dict], n: int, seed: int) -> list[dict]:
    """Balanced-ish stratified sample: n // k per class, then random top-up."""
    rng = random.Random(seed)
    by_cat: dict[str, list[dict]] = {}
    for r in rows:
        by_cat.setdefault(r["category"], []).append(r)
    per_class = n // len(by_cat)
    chosen, rest = [], []
    for cat in sorted(by_cat):
        items = list(by_cat[cat])
        rng.shuffle(items)
        chosen += items[:per_class]
        rest += items[per_class:]
    rest.sort(key=lambda r: (r["_order"], r["image"]))
    chosen += rng.sample(rest, n - len(chosen))
    chosen.sort(key=lambda r: (r["_order"], r["image"]))
    return chosen


def leak_report(df: pd.DataFrame) -> list[str]:
    """Accuracy of predicting the label from each column's value alone."""
    baseline = df[LABEL].value_counts(normalize=True).max()
    leaks = []
    print(f"leak check (majority-label accuracy per value; baseline {baseline:.3f}):")
    for col in CHECK_COLUMNS:
        acc = df.groupby(col, dropna=False)[LABEL].agg(lambda s: s.value_counts().max()).sum() / len(df)
        flag = "  LEAK -> dropped" if acc >= LEAK_THRESHOLD else ""
        print(f"  {col:18s} {acc:.3f}{flag}")
        if flag:
            leaks.append(col)
    return leaks


def flatten(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im = im.convert("RGBA")
        if im.size != (64, 64):
            im = im.resize((64, 64), Image.LANCZOS)
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.getchannel("A"))
        return bg


def write_images(rows: list[dict], img_out: Path, quantize: bool) -> int:
    if img_out.exists():
        shutil.rmtree(img_out)
    img_out.mkdir(parents=True)
    total = 0
    for r in rows:
        im = flatten(r["_src"])
        if quantize:
            im = im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        dst = img_out / Path(r["image"]).name
        im.save(dst, format="PNG", optimize=True)
        total += dst.stat().st_size
    return total


def folder_size(path: Path) -> int:
    """Apparent size like ``du -sb`` (files plus directory entries)."""
    return path.stat().st_size + sum(p.stat().st_size for p in path.rglob("*"))


def counts_table(train: pd.DataFrame, test: pd.DataFrame) -> str:
    tr, te = train[LABEL].value_counts(), test[LABEL].value_counts()
    lines = ["| category | train | test | total |", "|---|---:|---:|---:|"]
    for cat in sorted(set(tr.index) | set(te.index)):
        a, b = int(tr.get(cat, 0)), int(te.get(cat, 0))
        lines.append(f"| {cat} | {a} | {b} | {a + b} |")
    lines.append(f"| **total** | {len(train)} | {len(test)} | {len(train) + len(test)} |")
    return "\n".join(lines)


def readme(train: pd.DataFrame, test: pd.DataFrame, quantized: bool) -> str:
    both = pd.concat([train, test])
    dtypes = {"added_in": "float64", "n_codepoints": "int64"}
    cols = "\n".join(
        f"| `{c}` | {dtypes.get(c, 'string')} | {COLUMN_DOCS[c]}"
        f"{' (constant in this sample)' if both[c].nunique(dropna=False) == 1 else ''} |"
        for c in train.columns
    )
    img_note = (
        "then quantized to a 256-colour palette (PIL `quantize`, median cut, no dither) "
        "to keep the folder under 2 MB, "
        if quantized
        else ""
    )
    return f"""# emoji demo data set

A tiny real multimodal (image + text + tabular) multiclass data set: predict an
emoji's `category` (9 classes) from its 64x64 image, its name/keywords and a few
tabular attributes. {len(train) + len(test)} rows, split {len(train)} train / {len(test)} test.

## Source

- npm package [`{PACKAGE}@{VERSION}`](https://www.npmjs.com/package/{PACKAGE}),
  from the upstream project [emoji-data](https://github.com/iamcal/emoji-data)
  by Cal Henderson (iamcal).
- Images: Google's [Noto Emoji](https://github.com/googlefonts/noto-emoji)
  (`img/google/64/` in the npm package).

## Licenses

- Metadata (`emoji.json` → names, keywords, categories, flags):
  MIT, Copyright (c) 2013 Cal Henderson — see `LICENSE-metadata-MIT.txt`.
- Images (`images/`): Noto Emoji, Copyright Google Inc., Apache License 2.0 —
  see `LICENSE-images-Apache-2.0.txt`. The images were modified (see below).
- See `NOTICE`.

## Files

- `train.parquet`, `test.parquet` — the table (zstd compressed).
- `images/` — one PNG per row, referenced by the `image` column.
- `dataset.json` — label, problem type, metric, modality columns, row counts.

## Columns

| column | dtype | description |
|---|---|---|
{cols}

Not included on purpose, because they encode the category: `sort_order`,
`sheet_x`, `sheet_y`, `subcategory`, `unified`. The remaining tabular columns
were checked for label leaks (accuracy of predicting the label from a column's
value alone must stay below {LEAK_THRESHOLD}).

## How it was built

1. Keep the emojis of `emoji.json` with `has_img_google` true, excluding the
   category "Component" (skin-tone/hair swatches).
2. Sample {N_ROWS} of them, stratified by category: {N_ROWS} // 9 per category
   (seeded shuffle, seed {SEED}), then a seeded random top-up to exactly {N_ROWS}.
3. Split 80/20 with scikit-learn
   `train_test_split(test_size={TEST_SIZE}, random_state={SEED}, stratify=category)`.
4. Images: the 64x64 Google PNGs, alpha flattened onto white and converted to RGB,
   {img_note}saved with PIL `optimize=True`.

Rebuild (deterministic) with:

```
npm pack {PACKAGE}@{VERSION} && tar xzf {PACKAGE}-{VERSION}.tgz
python scripts/build_demo_data.py --src package
```

## Class counts

{counts_table(train, test)}
"""


NOTICE_TEMPLATE = """emoji demo data set (mmtricks)

Built from the npm package {package}@{version}
(https://github.com/iamcal/emoji-data).

Emoji metadata: Copyright (c) 2013 Cal Henderson.
Licensed under the MIT License (LICENSE-metadata-MIT.txt).

Emoji images: Noto Emoji, Copyright Google Inc.
(https://github.com/googlefonts/noto-emoji).
Licensed under the Apache License, Version 2.0 (LICENSE-images-Apache-2.0.txt).
The images were modified: alpha flattened onto a white background and
converted to RGB{quantized}.
"""


def notice(quantized: bool) -> str:
    return NOTICE_TEMPLATE.format(
        package=PACKAGE, version=VERSION,
        quantized=", then quantized to a 256-colour palette" if quantized else "",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=Path("/tmp/emoji/package"),
                    help="extracted npm package folder (contains emoji.json)")
    ap.add_argument("--out", type=Path, default=Path("src/mmtricks/demo/data/emoji"),
                    help="output data set folder")
    ap.add_argument("--apache-license", type=Path,
                    default=Path("/usr/share/common-licenses/Apache-2.0"),
                    help="full text of the Apache License 2.0")
    args = ap.parse_args(argv)
    src, out = args.src, args.out

    rows = load_records(src)
    picked = sample(rows, N_ROWS, SEED)
    df = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in picked])

    leaks = leak_report(df)
    df = df.drop(columns=leaks)

    str_cols = [c for c in df.columns if c not in ("added_in", "n_codepoints")]
    df[str_cols] = df[str_cols].astype(object).where(df[str_cols].notna(), None)
    df["added_in"] = df["added_in"].astype("float64")
    df["n_codepoints"] = df["n_codepoints"].astype("int64")

    train, test = train_test_split(df, test_size=TEST_SIZE, random_state=SEED, stratify=df[LABEL])
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)

    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "LICENSE", out / "LICENSE-metadata-MIT.txt")
    shutil.copyfile(args.apache_license, out / "LICENSE-images-Apache-2.0.txt")

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [(c, pa.float64() if c == "added_in" else pa.int64() if c == "n_codepoints" else pa.string())
         for c in df.columns]
    )
    for split, part in (("train", train), ("test", test)):
        table = pa.Table.from_pandas(part, schema=schema, preserve_index=False)
        table = table.replace_schema_metadata(None)
        pq.write_table(table, out / f"{split}.parquet", compression="zstd")

    meta = {
        "name": "emoji",
        "label": LABEL,
        "problem_type": "multiclass",
        "metric": "accuracy",
        "modalities": ["image", "text", "tabular"],
        "image_columns": IMAGE_COLUMNS,
        "text_columns": TEXT_COLUMNS,
        "n_train": len(train),
        "n_test": len(test),
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    ordered = sorted(picked, key=lambda r: r["image"])
    write_images(ordered, out / "images", quantize=False)
    (out / "README.md").write_text(readme(train, test, False), encoding="utf-8")
    quantized = folder_size(out) >= MAX_BYTES
    if quantized:
        write_images(ordered, out / "images", quantize=True)
        (out / "README.md").write_text(readme(train, test, True), encoding="utf-8")
    (out / "NOTICE").write_text(notice(quantized), encoding="utf-8")
    size = folder_size(out)
    print(f"wrote {out}: {len(train)} train / {len(test)} test rows, "
          f"{size} bytes{' (images quantized)' if quantized else ''}")
    if size >= MAX_BYTES:
        print(f"error: {out} is {size} bytes, over {MAX_BYTES}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
