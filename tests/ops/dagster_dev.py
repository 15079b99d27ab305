"""`dagster dev` as a test fixture: started on a free loopback port in its own process group,
answered over HTTP and GraphQL, stopped by signalling the whole group.

Why a process group: started from a non-interactive shell, `dagster dev` ignores SIGTERM on its
own, and its webserver, daemon and code servers are children; signalling the group stops them all.
Why a scratch working directory: `dagster dev` loads a `.env` from its working directory over the
environment (the repository's `.env` may hold a user's settings, or an older one a plain DAGSTER_HOME
that would override the exported one), and the test must use its own instance and settings.
Why SIGINT is reset for the child: `dagster dev` maps SIGTERM to its SIGINT handler, so a SIGINT
ignored by inheritance (a background job of a non-interactive shell, ``nohup``) would make it
ignore SIGTERM as well.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

LOCATION_STATUS = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""


def _workspace_file(workdir: Path) -> tuple[Path, str]:
    """The repository's workspace.yaml with its working directory made absolute, and the location name."""
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]
    module["working_directory"] = str(REPO)
    path = workdir / "workspace.yaml"
    path.write_text(yaml.safe_dump(workspace))
    return path, module["location_name"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(base_url: str, query: str, variables: Mapping[str, object] | None = None) -> dict:
    """POST a GraphQL query to the webserver and return its ``data``."""
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    request = urllib.request.Request(f"{base_url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.load(response)
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


def _location_loaded(base_url: str, location_name: str) -> bool:
    """True once the code location is loaded; raises with Dagster's message if it failed to load."""
    try:
        entries = graphql(base_url, LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
    entry = next((e for e in entries if e["name"] == location_name), None)
    if entry is None or entry["loadStatus"] != "LOADED":
        return False
    location = entry["locationOrLoadError"]
    if location and location["__typename"] == "PythonError":
        raise RuntimeError(f"Code location {location_name} failed to load: {location['message']}")
    return True


def _wait_until_ready(
    base_url: str, location_name: str, process: subprocess.Popen, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        if _location_loaded(base_url, location_name):
            return
        time.sleep(1)
    raise TimeoutError(f"dagster dev did not load {location_name} in {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """While starting a child: an ignored SIGINT would be inherited through exec, a handled one is not."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


def _stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextmanager
def dagster_dev(env: Mapping[str, str], workdir: Path, timeout: float = 240) -> Iterator[str]:
    """Run `dagster dev` on the project with ``env`` added; yields the base URL once the code is loaded."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = workdir / "dagster-dev.log"
    workspace, location_name = _workspace_file(workdir)
    command = [
        str(Path(sys.executable).with_name("dagster")), "dev", "-h", "127.0.0.1", "-p", str(port),
        "-w", str(workspace),
    ]
    with log.open("w") as out, _sigint_not_ignored():
        process = subprocess.Popen(
            command, cwd=workdir, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(base_url, location_name, process, log, timeout)
        yield base_url
    finally:
        _stop_group(process)
