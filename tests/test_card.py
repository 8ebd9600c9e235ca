"""The model card: one self-contained HTML page (mmtricks.card, ``mmtricks card``)."""
import base64
import io
import re
import shutil
import subprocess

import pandas as pd
import pytest
from PIL import Image

from mmtricks.card import write_card
from mmtricks.cli import main

from informative import fit_tiny, informative_table

LABELS = ("neg<1>", 'pos&"co"')  # class names that must be escaped


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    df = informative_table(labels=LABELS)
    p = fit_tiny(df)
    folder = tmp_path_factory.mktemp("card")
    p.save(str(folder / "model"))
    return p, df, folder


def _images(text: str) -> dict:
    """``{img id: decoded PIL image}``; every src must be an inline PNG."""
    out = {}
    for ident, src in re.findall(r'<img id="([^"]+)"[^>]* src="([^"]+)"', text):
        assert src.startswith("data:image/png;base64,")
        out[ident] = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    return out


def _self_contained(text: str) -> None:
    assert "http://" not in text and "https://" not in text and "file:" not in text
    for src in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text):
        assert src.startswith("data:"), src
    assert "<link" not in text and "<script" not in text.lower() and "@import" not in text


def test_card_with_data_has_every_section(fitted, tmp_path):
    p, df, _ = fitted
    out = write_card(p, str(tmp_path / "card.html"), data=df)
    text = open(out, encoding="utf-8").read()
    _self_contained(text)
    for ident in ("summary", "curves", "soup", "plan", "diagnosis", "leaderboard", "evaluation", "config", "schema"):
        assert f'<section id="{ident}">' in text
    images = _images(text)
    assert set(images) == {"validation-curve", "confusion-matrix", "modality-importance"}
    for im in images.values():
        assert im.size[0] > 200 and len(im.convert("RGB").getcolors(1 << 20)) > 2
    for key in ("optim.lr", "optim.soup", "data.text_max_length", "fusion.name", "env.eval_batch_size"):
        assert f"<td>{key}</td>" in text
    for column, kind in p.schema_.column_kinds.items():
        assert f"<td>{column}</td><td>{kind}</td>" in text
    for metric in p.evaluate(df):
        assert f"<td>{metric}</td>" in text
    # Modality importance table: one row per modality and per column.
    for group in ("tabular", "text", "x", "z", "txt"):
        assert f"<td>{group}</td>" in text
    # Every soup member and every validation of the history is listed.
    assert text.count("<tr>") > len(p.fit_info_["history"]) + len(p.fit_info_["soup"]["members"])
    # Class names are escaped, never raw HTML.
    assert "neg<1>" not in text and "neg&lt;1&gt;" in text and 'pos&"co"' not in text
    assert "pos&amp;&quot;co&quot;" in text


def test_card_without_data_and_a_richer_leaderboard(fitted, tmp_path, monkeypatch):
    p, _, _ = fitted
    board = pd.DataFrame([{"model": "member <a>", "weight": 0.75, "val_score": 0.9},
                          {"model": "member b", "weight": 0.25, "val_score": None}])
    monkeypatch.setattr(p, "leaderboard", lambda: board)
    text = open(write_card(p, str(tmp_path / "c.html")), encoding="utf-8").read()
    _self_contained(text)
    assert '<section id="evaluation">' not in text and set(_images(text)) == {"validation-curve"}
    assert "<th>weight</th>" in text and "member &lt;a&gt;" in text and '<td class="num">0.75</td>' in text


def test_regression_card_has_a_scatter(tmp_path):
    df = informative_table(n=100, regression=True)
    p = fit_tiny(df)
    text = open(write_card(p, str(tmp_path / "r.html"), data=df), encoding="utf-8").read()
    _self_contained(text)
    assert set(_images(text)) == {"validation-curve", "scatter", "modality-importance"}
    assert "<td>r2</td>" in text and "<td>rmse</td>" in text


def test_cli_writes_the_card(fitted, tmp_path, capsys):
    _, df, folder = fitted
    data = tmp_path / "test.parquet"
    df.to_parquet(data)
    out = tmp_path / "sub" / "card.html"
    assert main(["card", "--model", str(folder / "model"), "--data", str(data), "--out", str(out)]) == 0
    assert "model card written to" in capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert '<section id="evaluation">' in text and 'id="confusion-matrix"' in text
    assert main(["card", "--model", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def _browser():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_browser() is None, reason="no headless browser installed (Debian: apt-get install chromium)")
def test_card_renders_in_a_real_browser(fitted, tmp_path):
    p, df, _ = fitted
    card = write_card(p, str(tmp_path / "card.html"), data=df)
    shot = tmp_path / "shot.png"
    subprocess.run([_browser(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,3000",
                    f"file://{card}"], check=False, timeout=120, capture_output=True)
    assert shot.is_file()
    with Image.open(shot) as im:
        assert im.size == (1200, 3000)
        colors = im.convert("RGB").getcolors(1 << 24)
        assert colors is not None and len(colors) > 50  # text, tables and figures, not a blank page
