"""Issue 34 (`--time` is the wall clock) and issue 32 (one owner for the time budget):
:class:`charrnn.training.schedule.Budget` decides, once per step, whether the run stops,
keeps back what the final evaluation and save take at the speed measured now, and sizes
the final evaluation to what is left; the summary's clock is the wall's; the bar and the
summary report one speed."""

from __future__ import annotations

import io
import math
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_text, tiny_cli, tiny_config
from rich.console import Console

from charrnn.checkpoint import load_checkpoint
from charrnn.cli.live import LiveReporter, measured_on
from charrnn.config import TrainConfig
from charrnn.rundir import RunDir
from charrnn.training.clock import chars_per_s
from charrnn.training.launch import train
from charrnn.training.schedule import FINAL_SHARE, MAX_EVALUATION_SHARE, Budget, Verdict
from charrnn.units import human

# -- the budget's arithmetic, on a clock the test sets ----------------------------------


def _budget(time_s: float = 100.0, **train: object) -> tuple[Budget, list[float]]:
    """A 100-second budget whose clock reads what the test puts in ``now[0]``, after
    steps of 0.1 s (100 characters each: 1,000 characters/s) and a measured evaluation
    speed of 2,000 characters/s."""
    config = TrainConfig(steps=None, time_s=time_s, eval_every=None, **train)  # type: ignore[arg-type]
    budget = Budget(config, windows_per_epoch=1000, chars_per_step=100)
    now = [0.0]
    budget.clock.elapsed = lambda: now[0]  # type: ignore[method-assign]
    budget.clock.starting_s = lambda: 0.0  # type: ignore[method-assign]
    budget.step_s, budget.eval_ratio = 0.1, 2.0
    budget._steps = 10  # past the first (warm-up) step
    budget.whole_chars, budget.reads = 4_000, 1
    budget.part = (1_000, False)
    return budget, now


def test_training_stops_when_one_more_step_would_eat_into_the_final_evaluation() -> None:
    budget, now = _budget()
    # The final one: the part (0.5 s) and the whole text (2 s) at 2,000 characters/s,
    # and a 0.5 s save: 3 s, under the cap (6 % of 100 s).
    budget.save_s = 0.5
    assert budget.final_s() == pytest.approx(3.0)
    assert budget.reserve_s() == pytest.approx(3.0)
    now[0] = 100.0 - 3.0 - 0.1 - 0.01  # one more 0.1 s step still fits
    assert budget.verdict(500).stop is None
    now[0] = 100.0 - 3.0 - 0.05  # it would not
    assert budget.verdict(500) == Verdict("time")
    # After the first step (a warm-up: its time says little of the next's), only the
    # budget itself ends the run: once it stopped a 30-second run at 22 s.
    budget._steps = 1
    assert budget.verdict(1).stop is None
    now[0] = 100.0
    assert budget.verdict(1) == Verdict("time")


def test_the_final_evaluation_is_kept_to_its_share_and_reads_what_is_left() -> None:
    budget, now = _budget()
    budget.whole_chars = 400_000  # 200 s to read at 2,000 characters/s
    cap = FINAL_SHARE * MAX_EVALUATION_SHARE * 100.0  # 6 s
    assert budget.reserve_s() == pytest.approx(cap)
    now[0] = 100.0 - cap  # where training stops: the final one reads 6 s worth
    assert budget.final_chars() == pytest.approx(cap * 2_000, abs=1)
    budget.extra_s, budget.save_s = 1.0, 0.5  # the sample and the saves come first
    assert budget.final_chars() == pytest.approx((cap - 1.5) * 2_000, abs=1)
    now[0] = 101.0  # already late: nothing
    assert budget.final_chars() == 0
    # A final figure reads no less than one read of the part evaluations read during
    # training (here 10 s), unless that takes more than a quarter of the budget.
    budget.extra_s = budget.save_s = 0.0
    budget.part = (20_000, False)
    assert budget.reserve_s() == pytest.approx(10.0)
    budget.part = (80_000, False)
    assert budget.reserve_s() == pytest.approx(25.0)


def test_the_estimates_follow_the_machine_as_it_is_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine that gets busy slows training and evaluating alike: the step time
    follows within a couple of seconds, and the evaluation's speed with it (a ratio to
    training's, measured at the last evaluation), so the time kept back grows."""
    budget, _ = _budget(time_s=1000.0)  # the final evaluation's cap (60 s) stays out of it
    trained = [0.0]
    budget.clock.training_s = lambda: trained[0]  # type: ignore[method-assign]
    budget.step_s = None
    for _ in range(30):  # quiet: 0.1 s a step
        trained[0] += 0.1
        budget.stepped()
    assert budget.step_s == pytest.approx(0.1)
    trained[0] += 2.0  # one step held up for 2 s: not a slower machine
    budget.stepped()
    assert budget.step_s == pytest.approx(0.1)
    quiet_reserve = budget.reserve_s()
    for _ in range(40):  # another program takes the CPU: 0.3 s a step for 12 s
        trained[0] += 0.3
        budget.stepped()
    assert budget.step_s == pytest.approx(0.3, rel=0.05)
    assert budget.eval_speed() == pytest.approx(2.0 * 100 / 0.3, rel=0.05)
    assert budget.reserve_s() == pytest.approx(3 * quiet_reserve, rel=0.05)
    # An evaluation that read 3,000 characters in 1 s: the ratio is measured again.
    budget.evaluated(0.5, cost_s=1.2, read_chars=3_000, read_s=1.0, final=False)
    assert budget.eval_ratio == pytest.approx(3_000 / (100 / 0.3), rel=0.05)
    assert budget.extra_s == pytest.approx(0.2)


def test_an_evaluation_that_would_not_fit_is_skipped_not_run_late() -> None:
    budget, now = _budget(time_s=20.0)
    budget.whole_chars, budget.part = 40_000, (20_000, False)  # 10 s a read: 50 % of 20 s
    now[0] = 5.0
    budget.cadence.next_fraction = 0.0  # due
    assert budget.verdict(50) == Verdict()  # due, but more than its share: skipped
    budget.part = (200, False)  # 0.1 s a read: well within its share
    assert budget.verdict(50) == Verdict(evaluate=True)


def test_one_definition_of_characters_per_second() -> None:
    assert chars_per_s(3_000, 1.5) == 2_000
    assert chars_per_s(3_000, 0.0) == 0.0  # nothing trained yet: no speed, no error


# -- runs -------------------------------------------------------------------------------


def _slow_evaluations(monkeypatch: pytest.MonkeyPatch, chars_per_second: float) -> None:
    """Every read of validation text takes one second per ``chars_per_second``
    characters, whatever the machine: a slow model, deterministically."""
    import charrnn.training.evaluation as evaluation

    real = evaluation.validation_loss

    def slow(model: object, windows: object, device: object) -> float:
        time.sleep(windows.num_targets / chars_per_second)  # type: ignore[attr-defined]
        return real(model, windows, device)  # type: ignore[arg-type]

    monkeypatch.setattr(evaluation, "validation_loss", slow)


def test_the_final_evaluation_is_cut_and_says_so_when_little_time_remains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 60k-character validation text read at 40k characters/s takes 1.5 s to read,
    the final evaluation (the part with the weights and their average, then the
    whole) more: far more than the 6 % of a 2-second budget kept for it. Before, the
    run kept it all back and more (3.45 s for 2 s: 0.79 s training, 2.58 s
    evaluating); now the final evaluation reads what fits, and the summary,
    metrics.jsonl and best.pt say it read a part. The evaluations during training
    read 2,000 characters (--eval-chars), so the evaluation's speed is measured
    before the end."""
    _slow_evaluations(monkeypatch, 40_000.0)
    corpus = tmp_path / "t.txt"
    corpus.write_text(make_text(120_000, seed=3), encoding="utf-8")
    config = tiny_config(
        corpus, steps=None, time_s=2.0, eval_every=None, eval_chars=2_000, sample_length=0
    )
    config = replace(config, data=replace(config.data, val_frac=0.5))
    out = io.StringIO()
    reporter = LiveReporter(Console(file=out, width=200, color_system=None))
    summary = train(config, tmp_path / "run", reporter=reporter)
    assert summary.stopped_by == "time"
    assert summary.final_part is not None
    read, of = summary.final_part
    assert 0 < read < of and of > 59_000
    last = RunDir(tmp_path / "run").read_metrics()[-1]
    assert not last["val_whole"]
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert not best.best_whole and best.finished
    said = f"final figure on {read:,} of {of:,} characters because the budget ran out"
    assert measured_on(summary) == said
    assert said in " ".join(out.getvalue().split())
    # On time (the margin: a step and the evaluation speed's drift between the last
    # evaluation and the final one).
    assert 2.0 - 0.6 <= summary.elapsed_s <= 2.0 + 0.3, f"{summary.elapsed_s:.2f} s for 2 s"


def test_the_bar_and_the_summary_show_the_same_speed(tmp_path: Path, corpus_file: Path) -> None:
    """Before, the bar showed the speed of its last fifth of a second (809 characters/s
    beside a busy program) and the summary the run's (3.46k): now both show
    :func:`chars_per_s` of the run so far, and the bar ends on the summary's figure."""
    out = io.StringIO()
    reporter = LiveReporter(Console(file=out, width=200, color_system=None))
    config = tiny_config(corpus_file, steps=60, eval_every=20, sample_length=0)
    summary = train(config, tmp_path / "run", reporter=reporter)
    text = out.getvalue()
    speed = human(summary.chars_per_s)
    assert f"speed: {speed} characters/s" in text
    bar_speeds = re.findall(r"(\S+) char/s", text)
    assert bar_speeds and bar_speeds[-1] == speed, (bar_speeds, speed)
    # The figure is characters trained over seconds training: the time spent
    # starting, evaluating and saving is left out.
    # time_spent is rounded to 0.01 s (a tiny run trains for a fraction of a second).
    training_s = summary.time_spent["training"]
    low, high = training_s - 0.005, training_s + 0.005
    assert (
        summary.chars_seen / high * 0.99 <= summary.chars_per_s <= summary.chars_seen / low * 1.01
    )


@pytest.fixture
def warm() -> None:
    """Building the first AdamW of a process imports torch._dynamo (seconds on a busy
    machine; a command's start-up, counted in its budget): done here first, so that
    what a short budget measures in-process is the run's own time."""
    import torch

    torch.optim.AdamW([torch.zeros(1, requires_grad=True)], fused=True)


@pytest.mark.usefixtures("warm")
def test_the_summary_clock_is_the_wall(tmp_path: Path, corpus_file: Path) -> None:
    started = time.monotonic()
    config = tiny_config(corpus_file, steps=None, time_s=2.0, eval_every=None, sample_length=0)
    summary = train(config, tmp_path / "run", started=started)
    wall = time.monotonic() - started
    assert summary.elapsed_s == pytest.approx(wall, abs=0.1)
    assert sum(summary.time_spent.values()) == pytest.approx(summary.elapsed_s, abs=0.05)
    assert 2.0 * 0.9 <= wall <= 2.0 * 1.1


# -- the command, beside a program that keeps both cores busy ----------------------------


MIN_BUSY_BUDGET_S = 8.0
# The bound: the command must end by 1.15 x the budget. What may run over is the last
# training step (milliseconds for this model), an error in the final evaluation's
# estimate (at most its share, 6 %, when the speed halves between two measurements)
# and the process's exit after the summary (0.1-0.4 s with the collector frozen, 2-6 s
# without beside busy loops). Before this change the same kind of command took 1.5-4x
# its budget beside a busy loop (--time 20s: 44.2 s in the issue, 81 s on a shared
# 2-core machine).
BUSY_BOUND = 1.15
BURN = "import time\nend = time.monotonic() + 300\nwhile time.monotonic() < end: pass"
START = "import torch\ntorch.optim.AdamW([torch.zeros(1, requires_grad=True)])"


@pytest.mark.slow
def test_time_is_the_wall_clock_beside_a_cpu_burning_process(tmp_path: Path) -> None:
    """``charrnn train --time`` beside two busy loops (one per core of a 2-core
    machine) ends within 15 % of the budget by the wall. The budget is 8 s, or twice
    what starting Python, torch and an optimizer takes here beside the loops when that
    is longer: start-up counts, and a budget the machine cannot even start in is not
    what this measures (on a shared 2-core machine with 7 others at work it was 18 s)."""
    corpus = tmp_path / "t.txt"
    corpus.write_text(make_text(200_000, seed=5), encoding="utf-8")
    out = tmp_path / "run"
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(2)]
    try:
        began = time.monotonic()
        subprocess.run([sys.executable, "-c", START], check=True, timeout=240)
        budget = max(MIN_BUSY_BUDGET_S, math.ceil(2 * (time.monotonic() - began)))
        command = [sys.executable, "-m", "charrnn", "train", str(corpus), "--time", f"{budget}s"]
        command += [*tiny_cli(hidden=64, threads=None), "--out", str(out), "--cache-dir"]
        command += [str(tmp_path / "cache")]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=10 * budget)
        wall = time.monotonic() - started
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert done.returncode == 0, done.stderr
    assert budget * 0.85 <= wall <= budget * BUSY_BOUND, (
        f"{wall:.1f} s for --time {budget}s:\n{done.stderr[-2000:]}"
    )
    # The run's own clock (saved with the last checkpoint, start-up included) agrees
    # with the wall up to the exit after the last save.
    last = load_checkpoint(out / "last.pt")
    assert last.finished and last.stopped_by == "time"
    assert 0.0 <= wall - last.elapsed_s <= 0.1 * budget, (wall, last.elapsed_s)


def test_a_run_that_starts_after_its_budget_ran_out_ends_at_once(
    tmp_path: Path, corpus_file: Path
) -> None:
    """Start-up took longer than the whole budget (a busy machine: 39 s of a 20 s
    budget here once): one step, a final figure on one window per stream, no sample
    (200 characters of a 1x512 LSTM took 4.7 s then), and the summary says so."""
    from conftest import Recorder

    class Evaluations(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.samples: list[str] = []

        def evaluated(self, evaluation: object) -> None:
            self.samples.append(evaluation.sample)  # type: ignore[attr-defined]

    reporter = Evaluations()
    config = tiny_config(corpus_file, steps=None, time_s=2.0, eval_every=None, sample_length=50)
    started = time.monotonic() - 3.0  # as if the command had spent 3 s starting
    summary = train(config, tmp_path / "run", reporter=reporter, started=started)
    assert summary.step == 1 and summary.stopped_by == "time"
    assert reporter.samples == [""]
    assert summary.final_part is not None
    assert summary.elapsed_s <= 3.0 + 0.5


def test_auto_measures_one_model_for_a_short_time_budget() -> None:
    """A bigger model is no faster: when the smallest one's speed cannot reach the next
    rung's threshold in the budget, the next is not measured (before, a 20-second run
    measured a 2x512 it could never choose, on the budget's time)."""
    from charrnn.config import RunConfig
    from charrnn.layering import Layers
    from charrnn.training.auto import LADDER, choose

    measured: list[int] = []

    def speed(config: RunConfig) -> float:
        measured.append(config.model.num_layers * config.model.hidden_size)
        return 20_000.0

    choose(Layers(given={"train": {"time_s": 20.0}}), 1_000_000, 65, speed)
    assert measured == [LADDER[0].layers * LADDER[0].hidden]
    measured.clear()
    choose(Layers(given={"train": {"time_s": 3600.0}}), 1_000_000, 65, speed)
    assert len(measured) == len(LADDER)  # a long budget measures every rung


@pytest.mark.usefixtures("warm")
def test_a_command_inside_a_longer_process_counts_from_its_own_start(
    tmp_path: Path, corpus_file: Path
) -> None:
    """``charrnn train`` run in-process (here by CliRunner, minutes after pytest
    started) counts its budget from its own start, not the process's: a 2-second
    budget trains for about 2 seconds."""
    from typer.testing import CliRunner

    from charrnn.cli.app import app

    out = tmp_path / "run"
    options = [*tiny_cli(), "--time", "2s", "--sample-length", "0", "--out", str(out), "-q"]
    result = CliRunner().invoke(app, ["train", str(corpus_file), *options])
    assert result.exit_code == 0, result.output
    last = load_checkpoint(out / "last.pt")
    assert last.stopped_by == "time" and last.step > 10
    assert 2.0 * 0.8 <= last.elapsed_s <= 2.0 * 1.15
