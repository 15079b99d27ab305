"""The learning benchmark runs every row at its smallest size and writes its JSON, curves and predictions."""

from __future__ import annotations

import json

from benchmarks.learning import ROWS, main


def test_learning_benchmark_writes_every_row_and_the_curves(tmp_path, capsys) -> None:
    out = tmp_path / "learning"
    assert main(["--size", "smallest", "--budget-minutes", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "learning.json").read_text())
    assert list(summary["rows"]) == ROWS
    for name, row in summary["rows"].items():
        assert 0.0 <= row["binary_f1"] <= 100.0 and 0.0 <= row["macro_f1"] <= 100.0, name
    assert summary["rows"]["always_normal"]["binary_f1"] == 0.0  # it never flags an image
    assert summary["rows"]["always_normal"]["accuracy"] > 0.0  # its normal answers are right on normal images
    assert summary["rows"]["flag_everything"]["binary_f1"] > 0.0  # every anomalous image is caught
    trained = [name for name in ROWS if "samples_seen" in summary["rows"][name]]
    assert trained and all(summary["rows"][name]["samples_seen"] > 0 for name in trained)
    assert {point["row"] for point in summary["curves"]} == set(trained)
    assert summary["parameters"] > 0 and summary["images"]["pushpins"]["test"] > 0
    assert (out / "curves.png").stat().st_size > 0 and (out / "predictions.parquet").is_file()
    printed = capsys.readouterr().out
    assert all(name in printed for name in ROWS) and str(out / "curves.png") in printed
