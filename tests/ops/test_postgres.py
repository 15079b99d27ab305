"""A Postgres-backed Dagster instance exercised for real.

A PostgreSQL server from Debian's binaries starts on loopback (its own data directory and socket
under /tmp, a free port, password authentication over TCP); the instance is the storage, queue,
concurrency and monitoring part of deploy/k8s/dagster.yaml with its environment variables pointed
at that server. A re-split runs against it and its run, materialization and check evaluations
are read back, through Dagster and with plain SQL.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import yaml
from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, DagsterRunStatus

from tests.loco_tree import TreeSpec, build_tree

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
USER = "logicls"
PASSWORD = "logicls-test"
DATABASE = "dagster"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int

    def connect(self, dbname: str = DATABASE):
        return psycopg2.connect(host=self.host, port=self.port, user=USER, password=PASSWORD, dbname=dbname)


def _server_binaries() -> Path:
    """The directory of initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not candidates:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql "
                    "package (.ci/run does) to run the Postgres-backed instance test")
    return candidates[-1].parent


def _as_server_user() -> tuple[list[str], str | None]:
    """PostgreSQL refuses to run as root: as root, run it as the 'postgres' user Debian's package creates."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("Running as root and there is no 'postgres' user to run the PostgreSQL server as")
    return ["runuser", "-u", "postgres", "--"], "postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = _server_binaries()
    prefix, owner = _as_server_user()
    base = Path(tempfile.mkdtemp(prefix="logicls-pg-"))  # not below pytest's root-only tmp dirs
    data = base / "data"
    pwfile = base / "pwfile"
    pwfile.write_text(PASSWORD)
    if owner:
        shutil.chown(base, owner)
        shutil.chown(pwfile, owner)
    port = _free_port()
    started = False
    try:
        _run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
              "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"], base)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"),
              "-o", options, "-w", "-t", "60", "start"], base)
        started = True
        server = PostgresServer("127.0.0.1", port)
        conn = server.connect("postgres")
        conn.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
        conn.cursor().execute(f"CREATE DATABASE {DATABASE}")
        conn.close()
        yield server
    finally:
        if started:
            _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], base)
        shutil.rmtree(base, ignore_errors=True)


def _instance_dir(tmp_path: Path) -> Path:
    """deploy/k8s/dagster.yaml without the Kubernetes run launcher (there is no cluster here)."""
    config = yaml.safe_load((REPO / "deploy/k8s/dagster.yaml").read_text())
    del config["run_launcher"]
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def test_a_run_against_postgres_and_its_events_read_back(postgres_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_PG_HOST", postgres_server.host)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(postgres_server.port))
    monkeypatch.setenv("DAGSTER_PG_DB", DATABASE)
    monkeypatch.setenv("DAGSTER_PG_USERNAME", USER)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", PASSWORD)
    root = build_tree(tmp_path / "loco", TreeSpec("pushpins", ["a", "b"], single={"a": 5, "b": 5}))
    monkeypatch.setenv("LOGICLS_DATA_ROOT", str(root))
    monkeypatch.setenv("LOGICLS_STORAGE", str(tmp_path / "storage"))
    from pipelines.definitions import build_definitions

    home = _instance_dir(tmp_path)
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert instance.run_monitoring_enabled
        job = build_definitions().resolve_job_def("refresh_from_split")
        split_only = [AssetKey("loco_fc_split")]  # the later stages need models this test does not bring
        result = job.execute_in_process(partition_key="pushpins", instance=instance, asset_selection=split_only)
        assert result.success
        run_id = result.run_id
        instance.event_log_storage.set_concurrency_slots("gpu", 2)

    # A fresh instance on the same database sees everything the run wrote.
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("loco_fc_split"), asset_partitions=["pushpins"]), limit=10
        ).records
        assert len(records) == 1
        assert records[0].asset_materialization.metadata["dagster/row_count"].value == 3 + 2 + 10
        checks = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
        evaluations = {r.event_log_entry.dagster_event.event_specific_data.check_name:
                       r.event_log_entry.dagster_event.event_specific_data.passed for r in checks}
        assert set(evaluations) == {"no_split_leakage", "classes_in_both_splits", "split_counts",
                                    "excluded_images", "scenario_specs"}
        assert evaluations["no_split_leakage"] and evaluations["split_counts"]
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 2

    with postgres_server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("SUCCESS",)
        cur.execute(
            "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type IN ('ASSET_MATERIALIZATION', 'ASSET_CHECK_EVALUATION') GROUP BY 1",
            (run_id,),
        )
        assert dict(cur.fetchall()) == {"ASSET_MATERIALIZATION": 1, "ASSET_CHECK_EVALUATION": 5}
    conn.close()
