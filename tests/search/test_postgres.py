"""Many workers, one study: brute force over a PostgreSQL storage shared by `search` and `worker` processes.

Needs a server: `.ci/run` starts one and sets NETCARVE_TEST_POSTGRES_URL; locally the test is skipped
without it (`NETCARVE_TEST_POSTGRES_URL=$(bash .ci/start-postgres.sh) pytest -m postgres`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from netcarve.config import dumps_toml
from tests.search.helpers import search_dict

if TYPE_CHECKING:
    import optuna

URL = os.environ.get("NETCARVE_TEST_POSTGRES_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(URL is None, reason="no PostgreSQL: set NETCARVE_TEST_POSTGRES_URL (see .ci/start-postgres.sh)"),
]
SEED = {
    "default": {"config": {"name": [None], "channel_multiplier": [1]}},
    "seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2, 3]}},
    "seq_blocks_4": {"config": {"name": ["both"], "channel_multiplier": [1, 2, 3]}},
}


def netcarve(*args: str, cwd: Path) -> subprocess.Popen[str]:
    code = "from netcarve.cli.app import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def start_lead(tmp_path: Path, data: dict[str, Any]) -> tuple[subprocess.Popen[str], str, optuna.storages.RDBStorage]:
    """`netcarve search` of config ``data`` on a new PostgreSQL study; returns once the study exists."""
    import optuna

    assert URL is not None
    (tmp_path / "c.toml").write_text(dumps_toml(data))
    name = f"pg-{uuid.uuid4().hex[:8]}"
    lead = netcarve("search", "--config", "c.toml", "--storage", URL, "--study-name", name, cwd=tmp_path)
    storage = optuna.storages.RDBStorage(URL)
    deadline = time.time() + 60
    while name not in optuna.get_all_study_names(storage) and time.time() < deadline:
        time.sleep(0.2)
    return lead, name, storage


def test_search_and_worker_share_a_postgres_study(tmp_path: Path) -> None:
    """3 × 3 = 9 configurations; a `search` and a `worker` process split them: each is run exactly once."""
    import optuna

    # population 3: neither process claims the whole grid at once (auto would, not knowing of the worker)
    data = search_dict(tmp_path, seed=SEED, dataset="synthetic-jsc:6000", population=3)
    data["search"]["strategy"]["sw_runner"]["basic_train"]["max_epochs"] = 40
    lead, name, storage = start_lead(tmp_path, data)
    worker = netcarve("worker", "--storage", URL, "--study-name", name, "--worker-index", "1", cwd=tmp_path)
    out_lead, _ = lead.communicate(timeout=300)
    out_worker, _ = worker.communicate(timeout=300)
    assert lead.returncode == 0, out_lead
    assert worker.returncode == 0, out_worker
    study = optuna.load_study(study_name=name, storage=storage)
    done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["grid_id"] for t in done) == list(range(9))
    assert len({tuple(sorted(t.params.items())) for t in done}) == 9
    workers = {t.user_attrs["worker"] for t in done}
    assert len(workers) == 2  # both processes ran trials of the one study
    optuna.delete_study(study_name=name, storage=storage)


def test_kill_9_of_one_of_two_postgres_workers_loses_no_configuration(tmp_path: Path) -> None:
    """36 configurations, a `search` and two `worker` processes on one PostgreSQL study; one worker is
    killed with SIGKILL in the middle of a trial. The others fail its trial as stale and run the
    configuration again: 36 distinct complete configurations, exit 0."""
    import optuna

    from tests.search.test_worker_death import GRID_SEED, assert_every_configuration_once, kill_a_running_worker

    data = search_dict(tmp_path, seed=GRID_SEED, dataset="synthetic-jsc:4000", heartbeat_interval=1, population=4)
    data["search"]["strategy"]["sw_runner"]["basic_train"]["max_epochs"] = 4
    lead, name, storage = start_lead(tmp_path, data)
    workers = [
        netcarve("worker", "--storage", URL, "--study-name", name, "--worker-index", str(i), cwd=tmp_path)
        for i in (1, 2)
    ]

    def study() -> optuna.Study:
        return optuna.load_study(study_name=name, storage=storage)

    killed = kill_a_running_worker(study, lead)
    out_lead, _ = lead.communicate(timeout=300)
    outs = [w.communicate(timeout=300)[0] for w in workers]
    assert lead.returncode == 0, out_lead
    assert sorted(w.returncode for w in workers) == [-9, 0], outs
    assert [w.pid for w in workers if w.returncode == -9] == [killed]
    assert_every_configuration_once(study(), 36, killed)
    optuna.delete_study(study_name=name, storage=storage)


def test_no_password_is_written_anywhere(tmp_path: Path) -> None:
    """A search (2 worker processes) on a PostgreSQL URL with a password: the password appears in no file of
    the run dir, in no study or trial attribute, and in nothing the command printed."""
    import optuna
    import sqlalchemy

    assert URL is not None
    secret = f"S3cret{uuid.uuid4().hex[:10]}"
    role = f"nc_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{secret}'"))
    url = URL.replace("postgres:netcarve@", f"{role}:{secret}@", 1)
    assert secret in url
    try:
        data = search_dict(tmp_path, seed=SEED, dataset="synthetic-jsc:2000", n_jobs=2)
        (tmp_path / "c.toml").write_text(dumps_toml(data))
        name = f"pg-{uuid.uuid4().hex[:8]}"
        proc = netcarve("search", "--config", "c.toml", "--storage", url, "--study-name", name, "-v", cwd=tmp_path)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
        assert secret not in out
        run_dir = next((tmp_path / "runs" / "t").glob("2*"))
        files = [p for p in run_dir.rglob("*") if p.is_file()]
        assert {"manifest.json", "config.toml", "report.html", "trials.csv", "log.json"} <= {p.name for p in files}
        assert [p.name for p in files if secret.encode() in p.read_bytes()] == []
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert f"{role}:***@" in " ".join(manifest["argv"])  # the URL is there, its password is not
        storage = optuna.storages.RDBStorage(URL)
        study = optuna.load_study(study_name=name, storage=storage)
        attrs = [study.user_attrs, storage.get_study_system_attrs(storage.get_study_id_from_name(name))]
        attrs += [a for t in study.get_trials() for a in (t.user_attrs, t.system_attrs)]
        assert secret not in json.dumps(attrs, default=str)
        optuna.delete_study(study_name=name, storage=storage)
    finally:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP ROLE IF EXISTS {role}"))
        engine.dispose()
