"""The web UI end to end in a real browser, as a user works with it.

`dagster dev` serves the project on loopback over a small LOCO tree (tests/loco_tree.py), with its
own DAGSTER_HOME and LOGICLS_STORAGE. Headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium; no browser download) opens the asset graph and finds every asset of the
Definitions, launches `loco_fc_split` for one scenario from the asset's Materialize dialog, waits
for the run to succeed, and reads the row count on the asset's page. Screenshots go to
``storage/screenshots/browser/`` in the repository (and to ``$LOGICLS_SCREENSHOT_DIR`` if set).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.loco_tree import TreeSpec, build_tree
from tests.ops.dagster_dev import REPO, dagster_dev, graphql

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Flags this machine's closed network needs (.library/env/machines/python.md); a fresh profile each run.
CHROME_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1600,1000",
]
SCENARIO = "pushpins"
ASSET = "loco_fc_split"
UI_TIMEOUT = 120  # seconds; 2 shared cores render the UI slowly
RUN_TIMEOUT = 300
SCREENSHOTS = REPO / "storage" / "screenshots" / "browser"
RETRYABLE = (
    StaleElementReferenceException, ElementClickInterceptedException, ElementNotInteractableException,
    NoSuchElementException,
)

RUNS_OF_PARTITION = """
query Runs($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs { results { runId status } } } }
"""


def _tree_spec() -> TreeSpec:
    return TreeSpec(SCENARIO, ["a", "b"], train_good=3, test_good=2, single={"a": 10, "b": 10})


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(
            f"Debian's Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}): `apt-get install chromium "
            "chromium-driver` (.ci/run does this) to run the browser test"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="logicls-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(UI_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict[str, Path]:
    """A LOCO tree, a storage directory and a Dagster home, all fresh."""
    base = tmp_path_factory.mktemp("browser")
    home = base / "dagster_home"
    home.mkdir()
    template = (REPO / "deploy/local/dagster.yaml").read_text()  # as `make setup` renders it
    (home / "dagster.yaml").write_text(template.replace("@POOL_LIMIT@", "1"))
    return {"base": base, "home": home, "storage": base / "storage", "data": build_tree(base / "loco", _tree_spec())}


@pytest.fixture(scope="module")
def ui(project) -> Iterator[str]:
    env = {
        "DAGSTER_HOME": str(project["home"]),
        "LOGICLS_STORAGE": str(project["storage"]),
        "LOGICLS_DATA_ROOT": str(project["data"]),
        "OMP_NUM_THREADS": "1",
    }
    with dagster_dev(env, project["base"]) as base_url:
        # The first visit to a fresh instance opens a "Join the Dagster community" dialog over the page;
        # mark it seen up front, as its Skip button does, so it cannot cover a later click.
        graphql(base_url, "mutation { setNuxSeen }")
        yield base_url


@pytest.fixture(scope="module")
def screenshots() -> Callable[[WebDriver, str], Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    extra = os.getenv("LOGICLS_SCREENSHOT_DIR")

    def save(driver: WebDriver, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        driver.save_screenshot(str(path))
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        print(f"screenshot: {path}")
        return path

    return save


def _wait(driver: WebDriver, timeout: float = UI_TIMEOUT) -> WebDriverWait:
    return WebDriverWait(driver, timeout, poll_frequency=0.25, ignored_exceptions=RETRYABLE)


def _click(driver: WebDriver, xpath: str) -> None:
    """Click the element once it is displayed and enabled; React re-renders are retried."""

    def attempt(d: WebDriver) -> bool:
        element = d.find_element(By.XPATH, xpath)
        if not (element.is_displayed() and element.is_enabled()):
            return False
        element.click()
        return True

    _wait(driver).until(attempt, f"could not click {xpath}")


def _label_matches(name: str, label: str) -> bool:
    """An asset node shows its name, or (zoomed out) the name middle-truncated as ``head…tail``."""
    if label == name:
        return True
    head, sep, tail = label.partition("…")
    return bool(sep) and name.startswith(head) and name.endswith(tail) and len(head) + len(tail) < len(name)


def _graph_labels(driver: WebDriver) -> list[str]:
    return [e.text.strip() for e in driver.find_elements(By.XPATH, "//*[contains(@class, 'AssetNode_assetName')]")]


def _expand_all_groups(driver: WebDriver) -> None:
    """Several asset groups are drawn collapsed; the graph's settings menu expands them."""
    _click(driver, "//button[.//*[@aria-label='settings'] and normalize-space()='']")
    items = driver.find_elements(By.XPATH, "//*[@role='menuitem'][contains(., 'Expand all groups')]")
    if items:
        items[0].click()
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    _wait_gone(driver, "//*[@role='menuitem']")


def _wait_gone(driver: WebDriver, xpath: str) -> None:
    """Wait until a menu or popover has closed (its fade-out included), so it does not cover a screenshot."""
    _wait(driver).until(
        lambda d: not any(e.is_displayed() for e in d.find_elements(By.XPATH, xpath)), f"{xpath} stays open"
    )


def _expected_assets() -> list[str]:
    from pipelines.definitions import build_definitions

    return sorted(key.path[-1] for key in build_definitions().resolve_all_asset_keys())


def _wait_for_run(base_url: str) -> str:
    """The run the dialog launched for the scenario, once it succeeded (GraphQL, as the UI polls it)."""
    variables = {"filter": {"tags": [{"key": "dagster/partition", "value": SCENARIO}]}}
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        runs = graphql(base_url, RUNS_OF_PARTITION, variables)["runsOrError"]["results"]
        if runs:
            assert len(runs) == 1, runs
            run = runs[0]
            if run["status"] == "SUCCESS":
                return run["runId"]
            assert run["status"] not in {"FAILURE", "CANCELED"}, f"run {run['runId']} ended {run['status']}"
        time.sleep(1)
    raise TimeoutError(f"no successful run for {SCENARIO} within {RUN_TIMEOUT} s")


def test_asset_graph_materialize_from_ui_and_row_count(chromium, ui, project, monkeypatch, screenshots) -> None:
    driver = chromium
    monkeypatch.setenv("LOGICLS_DATA_ROOT", str(project["data"]))
    monkeypatch.setenv("LOGICLS_STORAGE", str(project["storage"]))
    expected = _expected_assets()

    # 1. The asset graph shows every asset of the Definitions.
    driver.get(f"{ui}/asset-groups")
    _wait(driver).until(lambda d: _graph_labels(d) or d.find_elements(By.XPATH, "//*[@data-tooltip]"))
    _expand_all_groups(driver)
    missing: list[str] = []

    def all_assets_drawn(d: WebDriver) -> bool:
        labels = _graph_labels(d)
        missing[:] = [n for n in expected if not any(_label_matches(n, label) for label in labels)]
        return not missing

    _wait(driver).until(all_assets_drawn, f"assets missing from the graph: {missing}")
    screenshots(driver, "01_asset_graph")

    # 2. Materialize one scenario partition from the asset's page.
    driver.get(f"{ui}/assets/{ASSET}")
    _click(driver, "//button[starts-with(normalize-space(), 'Materialize')]")
    _click(driver, "//*[@role='dialog']//div[contains(@class, 'TagSelector_tagSelectorContainer')]")
    _click(driver, f"//div[@data-tooltip='{SCENARIO}']")
    _click(driver, "//*[@role='dialog']//*[starts-with(normalize-space(), 'Launch runs to materialize')]")
    _wait_gone(driver, "//input[@placeholder='Filter partitions']")
    launch = "//*[@role='dialog']//button[normalize-space()='Launch 1 run']"
    _wait(driver).until(lambda d: d.find_element(By.XPATH, launch))
    screenshots(driver, "02_launch_dialog")
    _click(driver, launch)

    # 3. The run succeeds, and its page says so.
    run_id = _wait_for_run(ui)
    driver.get(f"{ui}/runs/{run_id}")
    _wait(driver).until(lambda d: d.find_element(By.XPATH, "//*[normalize-space()='Success']"))
    _wait(driver).until(lambda d: "RUN_SUCCESS" in d.find_element(By.TAG_NAME, "body").text)
    screenshots(driver, "03_run_success")

    # 4. The asset's page shows the row count of the Parquet file the run wrote.
    rows = len(pd.read_parquet(project["storage"] / ASSET / f"{SCENARIO}.parquet"))
    spec = _tree_spec()
    assert rows == spec.train_good + spec.test_good + sum(spec.single.values())
    driver.get(f"{ui}/assets/{ASSET}?partition={SCENARIO}")
    shown: list[int] = []

    def row_count_shown(d: WebDriver) -> bool:
        match = re.search(r"Row count\s+(\d+)", d.find_element(By.TAG_NAME, "body").text)
        shown[:] = [int(match.group(1))] if match else []
        return bool(shown)

    _wait(driver).until(row_count_shown, "no row count on the asset page")
    screenshots(driver, "04_asset_row_count")
    assert shown == [rows]
