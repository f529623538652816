"""Many workers, one study: brute force over a PostgreSQL storage shared by `search` and `worker` processes.

Needs a server: `.ci/run` starts one and sets NETCARVE_TEST_POSTGRES_URL; locally the test is skipped
without it (`NETCARVE_TEST_POSTGRES_URL=$(bash .ci/start-postgres.sh) pytest -m postgres`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from netcarve.config import dumps_toml
from tests.search.helpers import search_dict

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


def test_search_and_worker_share_a_postgres_study(tmp_path: Path) -> None:
    """3 × 3 = 9 configurations; a `search` and a `worker` process split them: each is run exactly once."""
    import optuna

    assert URL is not None
    data = search_dict(tmp_path, seed=SEED, dataset="synthetic-jsc:6000")
    data["search"]["strategy"]["sw_runner"]["basic_train"]["max_epochs"] = 40
    (tmp_path / "c.toml").write_text(dumps_toml(data))
    name = f"pg-{uuid.uuid4().hex[:8]}"
    lead = netcarve("search", "--config", "c.toml", "--storage", URL, "--study-name", name, cwd=tmp_path)
    storage = optuna.storages.RDBStorage(URL)
    deadline = time.time() + 60
    while name not in optuna.get_all_study_names(storage) and time.time() < deadline:
        time.sleep(0.2)
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
