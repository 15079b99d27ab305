"""Evidence reports: every test image and subquery, the fired classes with their evidence, the truth; images
embedded (no external resource); one page per image on demand, from the API and the command line."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.atomic import write_parquet_atomic
from models.evaluation import build_questions, image_report, predict, scenario_report, select_examples
from models.objects import object_from_mask, objects_to_frame
from models.spec import get_spec
from pipelines.report import EXIT_BAD_INPUT, main
from tests.cli_helpers import REPO, assert_one_line_error, read_only, run_cli
from tests.evaluation.helpers import ScriptedModel, cot_table, split_frame

SPEC = get_spec("pushpins")


class Page(HTMLParser):
    """Element ids, image sources, links and visible text of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids, self.srcs, self.links, self.texts = [], [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        for key, bucket in (("id", self.ids), ("src", self.srcs), ("href", self.links)):
            if key in attrs:
                bucket.append(attrs[key])
        if tag == "link":
            self.links.append(attrs.get("href", ""))

    def handle_data(self, data) -> None:
        self.texts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())


@pytest.fixture(scope="module")
def tables(pushpins_root) -> tuple[pd.DataFrame, pd.DataFrame]:
    split = split_frame(pushpins_root, "pushpins")
    test = split[split["split"] == "test"]
    questions = build_questions(test, SPEC, select_examples(cot_table(SPEC, split), SPEC))
    anomalous = test.loc[test["labels"].map(lambda x: list(x) != ["normal"]), "image_id"].iloc[0]
    script = {anomalous: {"row_1": "[2, 1, 1, 1, 1]", "separators_complete": "!maybe"}}
    truth = dict(zip(test["image_id"], test["labels"], strict=True))
    predictions = pd.concat([
        predict(SPEC, questions, ScriptedModel(SPEC, script), method="finetuned", model="scripted", true_labels=truth),
        predict(SPEC, questions, ScriptedModel(SPEC, {}), method="icl", model="scripted", true_labels=truth),
    ], ignore_index=True)
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:20, 10:30] = True
    grounding = pd.concat([objects_to_frame(i, [object_from_mask(mask, "pushpin", 0.8)]) for i in test["image_id"]])
    return predictions, grounding


def test_scenario_page_covers_images_subqueries_evidence_and_truth(tables) -> None:
    predictions, grounding = tables
    page = Page(scenario_report(SPEC, predictions, grounding, notes=["a note for the reader"]))
    for image_id in predictions["image_id"].unique():
        assert image_id.replace("/", "__") in page.ids and image_id in page.text
    for sub in SPEC.subqueries:
        assert sub.id in page.text and " ".join(sub.text.split()) in page.text
    assert "1_additional_pushpin: one pushpin beyond one per compartment" in page.text  # evidence of the rule
    assert "unparseable separators_complete" in page.text and "Truth:" in page.text
    assert "a note for the reader" in page.text and "finetuned: reasoning" in page.text
    n_images = predictions["image_id"].nunique()
    assert len(page.srcs) == n_images + 1  # the test images and the one Fig. 3 example
    assert all(src.startswith("data:image/jpeg;base64,") for src in page.srcs)
    assert all(link.startswith("#") for link in page.links)


def test_one_page_per_image(tables) -> None:
    predictions, grounding = tables
    image_id = sorted(predictions["image_id"].unique())[-1]
    page = Page(image_report(SPEC, predictions, image_id, grounding))
    assert [i for i in page.ids if "__" in i] == [image_id.replace("/", "__")]
    with pytest.raises(KeyError, match="no predictions for images"):
        image_report(SPEC, predictions, "pushpins/test/good/999", grounding)


def test_command_line_writes_scenario_and_image_pages(tables, tmp_path, monkeypatch, capsys) -> None:
    predictions, grounding = tables
    monkeypatch.setenv("LOGICLS_STORAGE", str(tmp_path))
    write_parquet_atomic(predictions, tmp_path / "lac_predictions" / "pushpins.parquet")
    write_parquet_atomic(grounding, tmp_path / "grounding" / "pushpins.parquet")
    image_id = predictions["image_id"].iloc[0]
    assert main(["pushpins"]) == 0 and main(["pushpins", "--image-id", image_id]) == 0
    written = [Path(line) for line in capsys.readouterr().out.splitlines()]
    assert written == [tmp_path / "reports" / "pushpins.html",
                       tmp_path / "reports" / "images" / (image_id.replace("/", "__") + ".html")]
    assert all(p.is_file() for p in written)
    assert main(["pushpins", "--image-id", "pushpins/test/good/999"]) == EXIT_BAD_INPUT
    assert main(["juice_bottle"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no predictions for images" in err[0] and "materialize lac_predictions" in err[1]


@pytest.fixture
def report_storage(tables, tmp_path) -> Path:
    predictions, grounding = tables
    storage = tmp_path / "storage"
    write_parquet_atomic(predictions, storage / "lac_predictions" / "pushpins.parquet")
    write_parquet_atomic(grounding, storage / "grounding" / "pushpins.parquet")
    return storage


def test_read_only_storage_is_one_line_and_out_is_the_way_around(report_storage, tmp_path) -> None:
    env = {"LOGICLS_STORAGE": str(report_storage)}
    with read_only(report_storage):
        done = run_cli("pipelines.report", "pushpins", env=env)
        assert_one_line_error(done, "report", f"{report_storage / 'reports'}: Permission denied",
                              "pass --out with a writable path")
        done = run_cli("pipelines.report", "pushpins", "--out", tmp_path / "page.html", env=env)
    assert done.returncode == 0 and done.stdout.strip() == str(tmp_path / "page.html"), done.stderr[-3000:]


def test_out_naming_a_directory_is_one_line(report_storage, tmp_path) -> None:
    done = run_cli("pipelines.report", "pushpins", "--out", tmp_path, env={"LOGICLS_STORAGE": str(report_storage)})
    assert_one_line_error(done, "report", f"--out {tmp_path} is a directory: give the HTML file to write",
                          f"--out {tmp_path / 'pushpins.html'}")


def test_a_broken_user_spec_is_a_warning_for_the_others_and_an_error_for_itself(report_storage, tmp_path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    tray = (REPO / "tests/spec/data/tray.yaml").read_text()
    (specs / "cap_tray.yaml").write_text(tray.replace("answer_type: integer", "answer_type: number", 1))
    env = {"LOGICLS_STORAGE": str(report_storage), "LOGICLS_SCENARIO_DIR": str(specs)}
    done = run_cli("pipelines.report", "pushpins", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    [warning] = done.stderr.strip().splitlines()
    assert warning.startswith("report: WARNING models.spec.loader: scenario 'cap_tray' skipped: ")
    assert f"{specs / 'cap_tray.yaml'}: invalid scenario spec: subqueries[0] (red_caps).answer_type" in warning
    assert_one_line_error(run_cli("pipelines.report", "cap_tray", env=env), "report",
                          "cap_tray.yaml: invalid scenario spec: subqueries[0] (red_caps).answer_type")
