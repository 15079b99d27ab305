"""The inference benchmark runs and reports the speed-up of shared image features with identical answers."""

from __future__ import annotations

from benchmarks.inference import parse_args, run


def test_benchmark_reports_speed_up_and_identical_answers() -> None:
    report = run(parse_args(["--scenario", "pushpins", "--images", "2", "--max-new-tokens", "4",
                             "--batch-size", "4"]))
    assert report["questions"] == 8
    assert report["vision_tower_calls"] == {"one_at_a_time": 16, "batched": 16, "shared_features": 3}
    for mode in ("one_at_a_time", "batched", "shared_features"):
        assert report[mode]["identical_answers"] and report[mode]["seconds"] > 0
    assert report["one_at_a_time"]["speed_up"] == 1.0
