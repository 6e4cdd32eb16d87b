"""results.csv: rows replaced by key, other rows kept, writes atomic."""
import csv

import pytest

from aesthetic4k.errors import UserError
from aesthetic4k.results import COLUMNS, read_rows, upsert_row


def row(generator, size, glcm):
    return {"generator": generator, "dataset": "sample", "size": size, "n_images": 2, "glcm_score": glcm}


def test_upsert_replaces_only_the_same_run(tmp_path):
    path = tmp_path / "r.csv"
    upsert_row(path, row("a", 2048, 0.5))
    upsert_row(path, row("b", 2048, 0.6))
    upsert_row(path, row("a", 4096, 0.7))
    upsert_row(path, row("a", 2048, 0.9))
    header, rows = read_rows(path)
    assert header[: len(COLUMNS)] == COLUMNS
    assert [(r["generator"], r["size"], r["glcm_score"]) for r in rows] == [
        ("a", "2048", "0.9"), ("b", "2048", "0.6"), ("a", "4096", "0.7")]


def test_unknown_columns_survive(tmp_path):
    path = tmp_path / "r.csv"
    upsert_row(path, {**row("a", 2048, 0.5), "my_note": "x"})
    upsert_row(path, row("b", 2048, 0.6))
    _, rows = read_rows(path)
    assert rows[0]["my_note"] == "x"


def test_malformed_file_is_a_user_error_and_left_alone(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("foo,bar\n1,2\n")
    with pytest.raises(UserError, match="not a results file"):
        upsert_row(path, row("a", 2048, 0.5))
    assert path.read_text() == "foo,bar\n1,2\n"


def test_failed_write_leaves_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "r.csv"
    upsert_row(path, row("a", 2048, 0.5))
    before = path.read_text()

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(csv.DictWriter, "writerow", explode)
    with pytest.raises(KeyboardInterrupt):
        upsert_row(path, row("b", 2048, 0.5))
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.csv.lock", "r.csv"]   # no temporary file left
