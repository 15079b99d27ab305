"""The built-in tiny model appears whole or not at all: a killed build never blocks later runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from models.vlm import tiny
from models.vlm.model import LoadedVLM
from models.vlm.tiny import BUILD_MARKER, build_tiny_qwen25vl, is_complete_build
from resources.storage import StorageResource
from resources.vlm import VisionLanguageModel as VLMResource

REPO = Path(__file__).resolve().parents[2]


def _storage_model(storage: Path) -> Path:
    return storage / "models" / "tiny-qwen2.5-vl-seed0"


def test_a_half_built_model_folder_is_rebuilt_and_loads(tiny_model_dir, tmp_path):
    target = _storage_model(tmp_path)
    target.mkdir(parents=True)
    shutil.copy(tiny_model_dir / "config.json", target / "config.json")  # what a killed first build left
    resource = VLMResource(storage=StorageResource(root=str(tmp_path)))
    vlm = resource.load()
    assert vlm.processor.image_processor is not None
    assert is_complete_build(target)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, f"{target.name}.lock"]


def test_a_whole_folder_built_before_the_marker_is_served_as_it_is(tiny_model_dir, tmp_path, monkeypatch):
    target = _storage_model(tmp_path)
    shutil.copytree(tiny_model_dir, target)
    (target / BUILD_MARKER).unlink()  # an older builder wrote the model card last and no marker
    monkeypatch.setattr(tiny, "build_tiny_qwen25vl", lambda *a, **k: pytest.fail("rebuilt a whole model"))
    assert VLMResource(storage=StorageResource(root=str(tmp_path))).model_dir() == target
    assert not target.with_name(f"{target.name}.lock").exists()  # no lock taken: read-only storage works


def test_a_crash_in_the_middle_of_a_build_leaves_no_folder(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while saving the processor")

    monkeypatch.setattr(tiny.Qwen2_5_VLProcessor, "save_pretrained", crash)
    target = tmp_path / "models" / "tiny"
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_tiny_qwen25vl(target)
    assert list(target.parent.iterdir()) == []  # no half folder, no temporary debris


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_build_killed_hard_leaves_no_folder_and_the_next_run_builds(tmp_path):
    target = _storage_model(tmp_path)
    code = (f"from resources.storage import StorageResource as S; from resources.vlm import VisionLanguageModel as R; "
            f"R(storage=S(root={str(tmp_path)!r})).model_dir()")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 120
        while not any(target.parent.glob("**/config.json")):  # the build has begun writing files
            assert proc.poll() is None and time.monotonic() < deadline, "the build ended before it could be killed"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not target.exists()  # debris only under a temporary name
    resource = VLMResource(storage=StorageResource(root=str(tmp_path)))
    assert LoadedVLM.from_pretrained(resource.model_dir()).processor
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, f"{target.name}.lock"]


def test_concurrent_callers_build_once(tmp_path, monkeypatch):
    builds = []
    real_build = tiny.build_tiny_qwen25vl

    def counting_build(*args, **kwargs):
        builds.append(threading.get_ident())
        return real_build(*args, **kwargs)

    monkeypatch.setattr(tiny, "build_tiny_qwen25vl", counting_build)
    resource = VLMResource(storage=StorageResource(root=str(tmp_path)))
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(resource.model_dir())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and len(set(results)) == 1 and len(results) == 3
    assert (results[0] / BUILD_MARKER).is_file()
