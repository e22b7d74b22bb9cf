"""``--checkpoint FILE`` / ``--resume FILE`` on Dask: a client SIGKILLed after pass k and resumed
from its checkpoint prints the same bits (JSON) as an uninterrupted run. Pass k is seen in the
checkpoint file itself (its ``pass`` field), never guessed from a sleep; a run that ended before
the kill fails the test instead of passing it silently."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed")

MODEL = "y ~ a*exp(-b*x) + c"
START = "a=1,b=0.01,c=0"


def _adcli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adcli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight CSV files of a decay with noise: a fit of some twenty passes from a far start."""
    path = tmp_path_factory.mktemp("ckpt")
    rng = np.random.default_rng(7)
    for i in range(8):
        x = rng.uniform(0, 5, 20000)
        y = 2.5 * np.exp(-1.3 * x) + 0.5 + rng.normal(0, 0.01, x.size)
        with open(path / f"part{i}.csv", "w") as fh:
            fh.write("x,y\n")
            fh.writelines(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(x, y))
    return path


def _fit_args(scheduler: str) -> list[str]:
    return ["fit", MODEL, "--data", "part*.csv", "--scheduler", scheduler, "--from", START,
            "--json"]


def _passes(path: Path) -> int:
    """The checkpoint's pass count, or 0 while it does not exist (atomic: never half a file)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return int(json.load(fh)["pass"])
    except FileNotFoundError:
        return 0


def _kill_after(args: list[str], checkpoint: Path, k: int, cwd: Path) -> int:
    """Run ``args`` with ``--checkpoint``, SIGKILL it once the checkpoint says pass k; the
    pass count the killed run left."""
    proc = subprocess.Popen([sys.executable, "-m", "adcli", *args, "--checkpoint",
                             str(checkpoint)], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        while proc.poll() is None:
            if _passes(checkpoint) >= k:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the run ended before pass k was seen"
    return _passes(checkpoint)


def _json(text: str) -> dict:
    out = json.loads(text)
    out.pop("seconds", None)  # wall time, not a result
    return out


@pytest.mark.parametrize("scheduler", ["synchronous", "local:2"])
def test_killed_after_pass_k_and_resumed_gives_the_same_bits(folder: Path,
                                                             scheduler: str) -> None:
    full = _adcli(*_fit_args(scheduler), "--checkpoint", "whole.json", cwd=folder)
    assert full.returncode == 0, full.stderr
    total = _passes(folder / "whole.json")
    assert total > 6
    checkpoint = folder / f"killed-{scheduler.replace(':', '')}.json"
    left = _kill_after(_fit_args(scheduler), checkpoint, 3, folder)
    assert 3 <= left < total
    doc = json.loads(checkpoint.read_text())
    assert set(doc["parameters"]) == {"a", "b", "c"}
    resumed = _adcli(*_fit_args(scheduler), "--resume", checkpoint.name, "--checkpoint",
                     checkpoint.name, cwd=folder)
    assert resumed.returncode == 0, resumed.stderr
    assert _json(resumed.stdout) == _json(full.stdout)
    # the resumed run's checkpoint holds every pass, recorded ones and new ones alike
    assert _passes(checkpoint) == total
    assert json.loads(checkpoint.read_text())["passes"] == \
        json.loads((folder / "whole.json").read_text())["passes"]


def test_a_checkpoint_of_another_problem_is_refused(folder: Path) -> None:
    done = _adcli(*_fit_args("synchronous"), "--checkpoint", "mine.json", cwd=folder)
    assert done.returncode == 0, done.stderr
    other = ["fit", MODEL, "--data", "part*.csv", "--scheduler", "synchronous", "--from",
             "a=2,b=0.01,c=0", "--json", "--resume", "mine.json"]
    run = _adcli(*other, cwd=folder)
    assert run.returncode != 0
    assert run.stderr.startswith("Error: --resume 'mine.json': the checkpoint is of another "
                                 "problem")
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    run = _adcli(*_fit_args("synchronous")[:1], "y ~ a*exp(-b*x) + c*x",
                 *_fit_args("synchronous")[2:], "--resume", "mine.json", cwd=folder)
    assert "of another problem" in run.stderr, run.stderr
    (folder / "extra.csv").write_text("x,y\n1,1\n")  # the data's files changed
    run = _adcli(*_fit_args("synchronous")[:3], "*.csv", *_fit_args("synchronous")[4:],
                 "--resume", "mine.json", cwd=folder)
    (folder / "extra.csv").unlink()
    assert "of another problem" in run.stderr, run.stderr


@pytest.mark.parametrize("content", ["", "{", "[]", '{"format": "adcli-checkpoint-1"}',
                                     "\xff\xfe", '{"format": "x", "passes": []}'])
def test_a_file_that_is_no_checkpoint_is_one_error_line(folder: Path, content: str) -> None:
    bad = folder / "bad.json"
    bad.write_bytes(content.encode("latin-1"))
    run = _adcli(*_fit_args("synchronous"), "--resume", "bad.json", cwd=folder)
    assert run.returncode != 0
    assert run.stderr.startswith("Error: --resume 'bad.json': not an adcli checkpoint")
    assert run.stderr.count("\n") == 1


def test_a_tampered_pass_is_refused(folder: Path) -> None:
    done = _adcli(*_fit_args("synchronous"), "--checkpoint", "tamper.json", cwd=folder)
    assert done.returncode == 0, done.stderr
    doc = json.loads((folder / "tamper.json").read_text())
    doc["passes"][1][0][1] = (1.5).hex()  # another point asked for at pass 2
    (folder / "tamper.json").write_text(json.dumps(doc))
    run = _adcli(*_fit_args("synchronous"), "--resume", "tamper.json", cwd=folder)
    assert run.returncode != 0
    assert run.stderr.startswith("Error: --resume: pass 2 asks for other parameters")
    assert run.stderr.count("\n") == 1


@pytest.mark.parametrize("command", ["fit", "minimize"])
def test_an_answer_of_another_size_is_refused(folder: Path, command: str) -> None:
    """A checkpoint edited to hold too few numbers for a pass stops the run with one Error
    line instead of crashing the engine."""
    args = _fit_args("synchronous") if command == "fit" else _minimize_args("bfgs")
    done = _adcli(*args, "--checkpoint", f"size-{command}.json", cwd=folder)
    assert done.returncode == 0, done.stderr
    doc = json.loads((folder / f"size-{command}.json").read_text())
    doc["passes"][1][1] = doc["passes"][1][1][:1]
    (folder / f"size-{command}.json").write_text(json.dumps(doc))
    run = _adcli(*args, "--resume", f"size-{command}.json", cwd=folder)
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1].startswith("Error: --resume: pass 2 of the checkpoint "
                                                  "holds 1 numbers, not ")
    assert "Traceback" not in run.stderr


#: A run that dies (SIGKILL, as a crash or an OOM kill would) right after its checkpoint
#: records pass K: the in-memory runs take milliseconds, so the kill comes from inside.
_DIE_AFTER = """
import os, signal, sys
import adcli.partitioned.checkpoint as c
k = int(sys.argv[1])
record = c.Checkpoint.record
def dying(self, *args, **kw):
    record(self, *args, **kw)
    if len(self.passes) >= k:
        os.kill(os.getpid(), signal.SIGKILL)
c.Checkpoint.record = dying
from adcli.cli import main
sys.argv = ["adcli"] + sys.argv[2:]
main()
"""

IN_MEMORY = {
    "fit": ["fit", "y ~ a*exp(-b*x) + c", "--from", "a=1,b=1"],
    "auto": ["minimize", "(a*exp(-b*x) + c - y)^2", "--from", "a=1,b=1"],
    "bfgs": ["minimize", "(a*exp(-b*x) + c - y)^2", "--from", "a=1,b=1", "--method", "bfgs",
             "--trace", "TRACE"],
    "newton": ["minimize", "(a*exp(-b*x) + c - y)^2", "--from", "a=1,b=1", "--method",
               "newton", "--stderr", "hessian", "--reduce", "sum"],
}


@pytest.mark.parametrize("run", list(IN_MEMORY))
def test_in_memory_data_killed_after_pass_k_and_resumed_gives_the_same_bits(
        tmp_path: Path, run: str) -> None:
    """Data read into memory (one CSV file): the same journal and file format as on Dask, one
    entry per sweep of the engine over all the rows (fit, minimize auto) or per evaluation of
    the objective (value and gradient, Hessian); killed after pass 4 and resumed, the result
    (and the --trace) are the bits of a run never interrupted, made without a checkpoint."""
    import shutil

    shutil.copy(Path(__file__).resolve().parent.parent / "samples" / "exp_decay.csv",
                tmp_path / "d.csv")

    def args(trace: str) -> list[str]:
        return [a.replace("TRACE", trace) for a in IN_MEMORY[run]] + ["--data", "d.csv",
                                                                      "--json"]

    plain = _adcli(*args("plain.csv"), cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    killed = subprocess.run([sys.executable, "-c", _DIE_AFTER, "4", *args("killed.csv"),
                             "--checkpoint", "c.json"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr  # it died at pass 4
    assert killed.stdout == ""
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["format"] == "adcli-checkpoint-1" and doc["pass"] == 4
    assert set(doc["parameters"]) == {"a", "b", "c"}
    resumed = _adcli(*args("resumed.csv"), "--resume", "c.json", "--checkpoint", "c.json",
                     cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert _json(resumed.stdout) == _json(plain.stdout)
    assert _passes(tmp_path / "c.json") > 4
    if run == "bfgs":
        assert (tmp_path / "resumed.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()
    # a checkpoint of this run is another problem to the same data read on Dask
    if run == "fit":
        dask = _adcli(*args("x"), "--scheduler", "synchronous", "--resume", "c.json",
                      cwd=tmp_path)
        assert dask.returncode == 2
        assert "the checkpoint is of another problem" in dask.stderr.splitlines()[-1]


def test_in_memory_minibatches_refuse_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("x,y\n1,2\n2,4\n3,6.1\n")
    run = _adcli("minimize", "(w*x - y)^2", "--data", "d.csv", "--batch-size", "2",
                 "--checkpoint", "c.json", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1].startswith(
        "Error: --checkpoint and --resume cannot follow a minibatch run")
    assert "Traceback" not in run.stderr and not (tmp_path / "c.json").exists()


LOSS = "(a*exp(-b*x) + c - y)^2"


def _minimize_args(method: str, *more: str) -> list[str]:
    return ["minimize", LOSS, "--data", "part*.csv", "--scheduler", "synchronous", "--from",
            "a=1,b=0.1,c=0", "--reduce", "sum", "--json", "--method", method, *more]


@pytest.mark.parametrize("method", ["auto", "bfgs", "newton"])
def test_minimize_killed_and_resumed_gives_the_same_bits(folder: Path, method: str) -> None:
    """The least-squares engine (auto) and the general methods, whose line searches and
    Hessian passes are replayed as well."""
    full = _adcli(*_minimize_args(method, "--stderr", "hessian"), "--checkpoint",
                  f"whole-{method}.json", cwd=folder)
    assert full.returncode == 0, full.stderr
    total = _passes(folder / f"whole-{method}.json")
    checkpoint = folder / f"min-{method}.json"
    left = _kill_after(_minimize_args(method, "--stderr", "hessian"), checkpoint, 3, folder)
    assert 3 <= left < total
    resumed = _adcli(*_minimize_args(method, "--stderr", "hessian"), "--resume",
                     checkpoint.name, cwd=folder)
    assert resumed.returncode == 0, resumed.stderr
    assert _json(resumed.stdout) == _json(full.stdout)


def test_a_resumed_trace_is_the_uninterrupted_trace(folder: Path) -> None:
    args = _minimize_args("bfgs", "--trace")
    full = _adcli(*args, "whole.csv", "--checkpoint", "trace-whole.json", cwd=folder)
    assert full.returncode == 0, full.stderr
    _kill_after([*args, "killed.csv"], folder / "trace-killed.json", 4, folder)
    resumed = _adcli(*args, "resumed.csv", "--resume", "trace-killed.json", cwd=folder)
    assert resumed.returncode == 0, resumed.stderr
    assert (folder / "resumed.csv").read_bytes() == (folder / "whole.csv").read_bytes()


def test_minimize_refusals_are_one_error_line(folder: Path, tmp_path: Path) -> None:
    run = _adcli(*_minimize_args("adam", "--batch-size", "10", "--seed", "1", "--lr", "0.1"),
                 "--checkpoint", "mb.json", cwd=folder)
    assert run.stderr.splitlines()[-1].startswith(
        "Error: --checkpoint and --resume cannot follow a minibatch run")
    assert not (folder / "mb.json").exists()
    done = _adcli(*_minimize_args("bfgs"), "--checkpoint", "bfgs.json", cwd=folder)
    assert done.returncode == 0, done.stderr
    run = _adcli(*_minimize_args("lbfgs"), "--resume", "bfgs.json", cwd=folder)
    assert run.returncode != 0
    assert run.stderr.splitlines()[-1].startswith("Error: --resume 'bfgs.json': the checkpoint "
                                                  "is of another problem")
    run = _adcli("minimize", "x^2", "--checkpoint", "c.json", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.startswith("Error: --checkpoint needs --data")


class _Client:
    """What :func:`dashboard_link` asks a distributed client, answered as a scheduler would."""

    def __init__(self, services: dict, bokeh: str | None, link: str) -> None:
        self.services, self.bokeh, self.dashboard_link = services, bokeh, link

    def scheduler_info(self) -> dict:
        return {"services": self.services}

    def get_versions(self, check: bool, packages: list[str]) -> dict:
        assert packages == ["bokeh"]
        return {"scheduler": {"packages": {"bokeh": self.bokeh}}}


def test_the_dashboard_link_only_when_the_scheduler_serves_one() -> None:
    from adcli.partitioned.progress import dashboard_link, progress_line

    link = "http://10.0.0.5:8787/status"
    assert dashboard_link(None) is None  # threads, synchronous
    assert dashboard_link(_Client({"dashboard": 8787}, "3.4.0", link)) == link
    assert dashboard_link(_Client({}, "3.4.0", link)) is None
    assert dashboard_link(_Client({"dashboard": 8787}, None, link)) is None  # no bokeh: 404
    hostile = dashboard_link(_Client({"dashboard": 1}, "3.4.0", "http://x/\x1b[2J" + "a" * 500))
    assert hostile is not None and "\x1b" not in hostile and len(hostile) <= 200
    assert progress_line(3, 8, None) == "pass 3 over 8 partitions"
    assert progress_line(3, 8, link) == f"pass 3 over 8 partitions; dashboard {link}"


def test_the_dashboard_link_of_a_real_local_cluster() -> None:
    """A LocalCluster's scheduler lists a dashboard port; the link is shown exactly when its
    scheduler has bokeh to draw the page."""
    import importlib.util

    from adcli.partitioned.distributed import Scheduler
    from adcli.partitioned.progress import dashboard_link

    with Scheduler("local:1") as where:
        link = dashboard_link(where.client)
    if importlib.util.find_spec("bokeh") is None:
        assert link is None
    else:
        assert link is not None and link.startswith("http://")


@pytest.mark.parametrize("source", ["d.csv", "d*.csv"], ids=["in-memory", "dask"])
def test_the_checkpoints_parameters_are_named_right(tmp_path: Path, source: str) -> None:
    """The least-squares engine orders the parameters its own way (here c, a, b: the order
    of the residual); the checkpoint's latest parameters are still filed under their own
    names: those of the result."""
    import shutil

    shutil.copy(Path(__file__).resolve().parent.parent / "samples" / "exp_decay.csv",
                tmp_path / "d.csv")
    run = _adcli("minimize", "(c + a*exp(-b*x) - y)^2", "--data", source, "--from", "a=1,b=1",
                 "--json", "--checkpoint", "c.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)["minimum"]
    saved = json.loads((tmp_path / "c.json").read_text())["parameters"]
    assert {k: float(v) for k, v in saved.items()} == found
    assert len(set(found.values())) == 3  # three different values: a mix-up would show
