"""Where saved runs live (fixtures/storage.py): --benchmark-storage, else the ini's benchmark_storage, else
pytest-benchmark's default — the same for a run and for `python -m fixtures.report --history` with no folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# matplotlib is imported before the in-process runs below: pytester restores sys.modules after each, and one first
# imported inside a run would come back later as a second copy (its Artist class no longer the one matplotlib's own
# modules check against), breaking every chart drawn afterwards in this process.
import fixtures.report.charts  # noqa: F401
from fixtures.report import main as report
from fixtures.storage import PYTEST_BENCHMARK_DEFAULT, StorageError, for_run, project_storage
from stubs import copy_checkout

ROOT = Path(__file__).parent.parent

INI_FILES = {
    "pytest.ini": "[pytest]\n{key} = {value}\n",
    "tox.ini": "[pytest]\n{key} = {value}\n",
    "setup.cfg": "[tool:pytest]\n{key} = {value}\n",
    "pyproject.toml": '[tool.pytest.ini_options]\n{key} = "{value}"\n',
}


def test_the_rule() -> None:
    assert for_run(PYTEST_BENCHMARK_DEFAULT, None) == PYTEST_BENCHMARK_DEFAULT
    assert for_run(PYTEST_BENCHMARK_DEFAULT, "file:///mnt/shared") == "file:///mnt/shared"
    assert for_run(PYTEST_BENCHMARK_DEFAULT, "  ") == PYTEST_BENCHMARK_DEFAULT
    assert for_run("file://mine", "file:///mnt/shared") == "file://mine"  # --benchmark-storage given: it wins


@pytest.mark.parametrize("name", list(INI_FILES))
def test_each_ini_file_pytest_reads(name: str, tmp_path: Path) -> None:
    (tmp_path / name).write_text(INI_FILES[name].format(key="benchmark_storage", value="file:///mnt/shared/runs"))
    inner = tmp_path / "sub" / "dir"
    inner.mkdir(parents=True)
    assert project_storage(tmp_path, {}) == "file:///mnt/shared/runs"
    assert project_storage(inner, {}) == "file:///mnt/shared/runs"  # found above, as pytest finds it


def test_addopts_and_pytest_addopts_beat_the_ini_key(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = -q --benchmark-storage=file://from-addopts\nbenchmark_storage = file://from-key\n")
    assert project_storage(tmp_path, {}) == "file://from-addopts"
    assert project_storage(tmp_path, {"PYTEST_ADDOPTS": "--benchmark-storage file://from-env"}) == "file://from-env"
    (tmp_path / "pytest.ini").write_text('[pytest]\naddopts = -q "unclosed\n')
    with pytest.raises(StorageError, match="can't be split"):
        project_storage(tmp_path, {})


def test_toml_addopts_is_a_list(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = ["-q", "--benchmark-storage=file://listed"]\n')
    assert project_storage(tmp_path, {}) == "file://listed"


def test_nothing_set_is_pytest_benchmarks_default(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -q\n")
    assert project_storage(tmp_path, {}) == PYTEST_BENCHMARK_DEFAULT


def test_a_run_saves_where_the_ini_says_and_history_reads_it(pytester: pytest.Pytester) -> None:
    """A project whose ini names a shared storage: a run saves there, --history alone reads it; a run given
    --benchmark-storage saves where it says instead."""
    copy_checkout(pytester.path)
    ini = (ROOT / "pytest.ini").read_text() + "benchmark_storage = file://shared-runs\n"
    (pytester.path / "pytest.ini").write_text(ini)
    tiny = ("benchmarks/", "-k", "latency", "--bench-devices", "cpu", "--bench-models", "resnet18", "--bench-inputs",
            "1x3x32x32", "--bench-scopes", "model", "--bench-rounds", "3", "--bench-warmup", "1", "--bench-threads", "1",
            "-p", "no:cacheprovider", "--import-mode=importlib")
    assert pytester.runpytest_inprocess(*tiny, "--benchmark-save=a").ret == 0
    assert pytester.runpytest_inprocess(*tiny, "--benchmark-save=b", "--benchmark-storage=file://cli-runs").ret == 0
    assert [p.name for p in (pytester.path / "shared-runs").glob("*/*.json")] == ["0001_a.json"]
    assert [p.name for p in (pytester.path / "cli-runs").glob("*/*.json")] == ["0001_b.json"]
    assert report(["--history", "--out", "out", "--no-plots"]) == 0
    runs = [line.split("|")[2].strip() for line in (pytester.path / "out" / "report.md").read_text().splitlines()
            if re.match(r"\|\s*\d+\s*\|", line)]
    assert runs == ["0001_a.json"]  # the History's runs table


class _Interrupted:
    """A value whose serialization is interrupted, as a Ctrl-C while pytest-benchmark writes its JSON would be."""


def _interrupting_default(self, o):  # SafeJSONEncoder.default, interrupted on _Interrupted
    if isinstance(o, _Interrupted):
        raise KeyboardInterrupt
    return repr(o)


def test_an_interrupted_write_leaves_the_last_good_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-benchmark opens (truncates) its files before it serializes into them; made atomic, the old file stays
    whole when the writing is interrupted, and a finished write replaces it."""
    from types import SimpleNamespace

    from pytest_benchmark.logger import Logger
    from pytest_benchmark.session import BenchmarkSession
    from pytest_benchmark.storage.file import FileStorage
    from pytest_benchmark.utils import SafeJSONEncoder

    from fixtures.storage import atomic_writes

    monkeypatch.setattr(SafeJSONEncoder, "default", _interrupting_default)
    out = tmp_path / "out.json"
    out.write_text('{"old": true}')
    logger = Logger(level=0, config=None)
    logger.info = lambda *args, **kwargs: None  # type: ignore[method-assign]
    storage = FileStorage(str(tmp_path / "storage"), default_machine_id="machine", logger=logger)
    storage.get("0001_base.json").write_text('{"base": true}')
    bs = SimpleNamespace(json=str(out), logger=logger, storage=storage)
    bs.save_json = lambda data: BenchmarkSession.save_json(bs, data)  # pytest-benchmark's own writer, as on a session
    atomic_writes(bs)
    for write in (lambda data: bs.save_json(data), lambda data: storage.save(data, "next")):
        with pytest.raises(KeyboardInterrupt):
            write({"benchmarks": [_Interrupted()]})
    assert out.read_text() == '{"old": true}'
    assert [p.name for p in storage.path.rglob("*") if p.is_file()] == ["0001_base.json"]  # no half-written 0002, no temporary file
    bs.save_json({"new": 1})
    storage.save({"new": 2}, "next")
    assert '"new": 1' in out.read_text() and '"new": 2' in storage.get("0002_next.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "storage"]
