"""Storage and environment have one owner, `models/storage.py`: every ``LOGICLS_*`` variable is read there,
every location is built there, and lineage starts where the data does (``generated_loco``, or the real root)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
from dagster import AssetKey, DagsterInstance, asset, materialize

from models import storage
from models.storage import DEFAULT_DAGSTER_HOME, PROJECT_ROOT, StorageLayout
from pipelines.definitions import build_definitions, build_resources
from resources.parquet_io import ParquetIOManager
from resources.partitions import scenario_partitions
from resources.storage import StorageResource

REPO = Path(__file__).resolve().parents[2]
OWNER = "models/storage.py"
SOURCES = ("assets", "resources", "pipelines", "models", "benchmarks")
# A folder of the storage layout joined into a path: `... / "checkpoints"`, `f"{x}/cache/..."`.
LAYOUT_FOLDERS = ("cache", "checkpoints", "reports", "generated", "augmented_images", "cot_dataset", "models",
                  "storage", "dagster_home")
PATH_BUILDING = re.compile(r'/\s*"(' + "|".join(LAYOUT_FOLDERS) + r')"|}/(' + "|".join(LAYOUT_FOLDERS) + r')\b')


def _sources() -> list[Path]:
    return [path for package in SOURCES for path in sorted((REPO / package).rglob("*.py"))]


# Who else reads the environment, and what: torchrun's rank variables, and an API key by the name its
# resource was given (`resources/llm.py`, when a run starts). None of them is a LOGICLS_ variable.
OTHER_READERS = {"models/devices.py", "models/vlm/distributed.py", "models/vlm/fine_tuning.py", "resources/llm.py"}


def _reads_of_the_environment(path: Path) -> list[str]:
    """Every ``os.getenv(…)``, ``os.environ.get(…)``, ``os.environ[…]`` in the file, as source text."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call | ast.Subscript):
            text = ast.unparse(node)
            if re.match(r"os\.(getenv|environ)", text) and not text.startswith("os.environ.update("):  # a write
                found.append(text)
    return found


def test_logicls_variables_are_read_in_one_module_only() -> None:
    reads = {str(path.relative_to(REPO)): _reads_of_the_environment(path) for path in _sources()}
    readers = {path for path, found in reads.items() if found}
    assert readers == OTHER_READERS | {OWNER}
    assert not [text for path in OTHER_READERS for text in reads[path] if "LOGICLS_" in text]
    assert reads[OWNER] == ["os.environ.get(variable)"]  # one helper, called with the constants below
    literal = re.compile(r'"LOGICLS_[A-Z_]+"')  # a whole variable name as a string: only the owner's constants
    assert {str(path.relative_to(REPO)) for path in _sources() if literal.search(path.read_text())} == {OWNER}


def test_locations_are_built_in_one_module_only() -> None:
    builders = {str(path.relative_to(REPO)): PATH_BUILDING.findall(path.read_text()) for path in _sources()}
    assert {path for path, hits in builders.items() if hits} == {OWNER}


def test_every_resource_takes_its_locations_from_the_one_storage_root(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LOGICLS_STORAGE", str(tmp_path / "store"))
    resources = build_resources()
    layout = StorageLayout(tmp_path / "store")
    assert resources["storage"].data == {"root": str(layout.root)}  # the launchpad's default root
    assert resources["grounder"].cache_dir == str(layout.cache("grounding"))
    assert resources["paraphraser"].cache_dir == resources["icl_endpoint"].cache_dir == str(layout.cache("llm"))
    monkeypatch.delenv("LOGICLS_STORAGE")
    assert build_resources()["storage"].data == {"root": str(PROJECT_ROOT / "storage")}


def test_a_root_set_in_the_launchpad_moves_every_location(tmp_path, monkeypatch) -> None:
    """The IO manager and `loco` take the `storage` resource nested: a root given at launch reaches them too."""
    monkeypatch.setenv("LOGICLS_STORAGE", str(tmp_path / "default"))
    monkeypatch.delenv(storage.DATA_ROOT_VARIABLE, raising=False)
    job = build_definitions().resolve_implicit_global_asset_job_def()
    launched = tmp_path / "launched"
    result = job.execute_in_process(
        partition_key="pushpins", asset_selection=[AssetKey("generated_loco"), AssetKey("loco_fc_split")],
        instance=DagsterInstance.ephemeral(),
        run_config={"resources": {"storage": {"config": {"root": str(launched)}}},
                    "ops": {"generated_loco": {"config": {"per_logical_class": 2, "per_multi_combo": 1}}}})
    assert result.success
    layout = StorageLayout(launched)
    assert (layout.generated / "loco" / "pushpins").is_dir()
    assert pd.read_parquet(layout.table("loco_fc_split", "pushpins"))["image_path"].str.startswith(str(launched)).all()
    assert not (tmp_path / "default").exists()


def test_the_io_manager_writes_where_the_layout_says(tmp_path) -> None:
    @asset(partitions_def=scenario_partitions)
    def little_table() -> pd.DataFrame:
        return pd.DataFrame({"a": [1]})

    store = StorageResource(root=str(tmp_path))
    assert materialize([little_table], partition_key="pushpins",
                       resources={"io_manager": ParquetIOManager(storage=store)}).success
    assert pd.read_parquet(StorageLayout(tmp_path).table("little_table", "pushpins"))["a"].tolist() == [1]


def test_the_makefile_default_dagster_home_is_the_storage_modules() -> None:
    makefile = (REPO / "Makefile").read_text()
    default = re.search(r"^DEFAULT_DAGSTER_HOME := \$\(CURDIR\)/(\S+)$", makefile, re.MULTILINE).group(1)
    assert PROJECT_ROOT / default == DEFAULT_DAGSTER_HOME


def _parents(defs, name: str) -> set[str]:
    graph = defs.resolve_asset_graph()
    return {key.to_user_string() for key in graph.get(AssetKey(name)).parent_keys}


def test_lineage_starts_at_the_generated_data_set(monkeypatch) -> None:
    monkeypatch.delenv(storage.DATA_ROOT_VARIABLE, raising=False)
    defs = build_definitions()
    assert _parents(defs, "loco_fc_split") == {"generated_loco"}
    assert AssetKey("generated_loco") in defs.resolve_job_def("build_dataset").asset_layer.selected_asset_keys
    assert AssetKey("generated_loco") not in defs.resolve_job_def("refresh_from_split").asset_layer.selected_asset_keys


def test_lineage_starts_at_the_real_root_when_one_is_set(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(storage.DATA_ROOT_VARIABLE, str(tmp_path))
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    assert _parents(defs, "loco_fc_split") == {"loco_data"}
    assert not graph.get(AssetKey("loco_data")).is_executable  # made outside Dagster
    assert graph.get(AssetKey("loco_data")).metadata["data_root"].value == str(tmp_path)
    assert not graph.has(AssetKey("generated_loco"))  # nothing generated that nobody reads
    selected = defs.resolve_job_def("build_dataset").asset_layer.selected_asset_keys
    assert AssetKey("loco_fc_split") in selected and AssetKey("loco_data") not in selected
