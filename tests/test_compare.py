from __future__ import annotations

import json
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charrnn.cli.app import app
from charrnn.compare import run as comparison
from charrnn.compare.report import best_index
from charrnn.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from charrnn.data.streams import StreamBatches
from charrnn.errors import ConfigError, TrainingInterrupted
from charrnn.model.network import CharRNN

runner = CliRunner()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("layers", "hidden", "embed"), [(1, 7, 0), (3, 11, 5)])
def test_parameter_count_formula_matches_torch(
    cell: str, layers: int, hidden: int, embed: int
) -> None:
    model = CharRNN(
        13, ModelConfig(cell=cell, num_layers=layers, hidden_size=hidden, embed_size=embed)
    )
    assert comparison.count_parameters(cell, layers, hidden, embed, 13) == model.num_parameters


def test_matched_hidden_sizes_give_about_equal_parameters() -> None:
    target = comparison.count_parameters("lstm", 2, 128, 32, 65)
    for cell in ("rnn", "gru", "lstm"):
        hidden = comparison.matched_hidden(cell, 2, 32, 65, target)
        count = comparison.count_parameters(cell, 2, hidden, 32, 65)
        assert abs(count - target) / target < 0.02, (cell, hidden, count, target)
    assert comparison.matched_hidden("lstm", 2, 32, 65, target) == 128
    assert comparison.matched_hidden("rnn", 2, 32, 65, target) > 200


def base_config(path: Path) -> RunConfig:
    return RunConfig(
        DataConfig(path=str(path), val_frac=0.1),
        ModelConfig(embed_size=8),
        TrainConfig(
            batch_size=4,
            seq_len=16,
            steps=12,
            eval_every=4,
            sample_length=0,
            threads=1,
            device="cpu",
        ),
    )


def test_plan_runs_every_combination_differing_only_in_the_model(corpus_file: Path) -> None:
    base = base_config(corpus_file)
    runs = comparison.plan(
        base, cells=["rnn", "gru"], layers=[1, 2], hiddens=[8, 16], vocab_size=30
    )
    assert [r.name for r in runs] == [
        "rnn-1x8",
        "gru-1x8",
        "rnn-1x16",
        "gru-1x16",
        "rnn-2x8",
        "gru-2x8",
        "rnn-2x16",
        "gru-2x16",
    ]
    for run in runs:
        assert run.config.data == base.data and run.config.train == base.train
    matched = comparison.plan(
        base, cells=["rnn", "lstm"], layers=[1], hiddens=[16], vocab_size=30, match_params=True
    )
    assert matched[0].config.model.hidden_size > 16 == matched[1].config.model.hidden_size
    with pytest.raises(ConfigError, match="unknown cell"):
        comparison.plan(base, cells=["rnn", "tcn"], layers=[1], hiddens=[8], vocab_size=30)
    with pytest.raises(ConfigError, match="twice"):
        comparison.plan(base, cells=["rnn", "rnn"], layers=[1], hiddens=[8], vocab_size=30)


def test_every_run_sees_the_same_batches_in_the_same_order(
    tmp_path: Path, corpus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, bytes]] = []
    original = StreamBatches.window

    def recording(self: StreamBatches, step: int):
        window = original(self, step)
        seen.append((step, window.x.numpy().tobytes() + window.y.numpy().tobytes()))
        return window

    monkeypatch.setattr(StreamBatches, "window", recording)
    runs = comparison.plan(
        base_config(corpus_file),
        cells=["rnn", "lstm", "gru"],
        layers=[1],
        hiddens=[8],
        vocab_size=30,
    )
    results = comparison.run_comparison(runs, tmp_path / "cmp")
    per_run = [seen[i * 12 : (i + 1) * 12] for i in range(3)]
    assert len(seen) == 36
    assert per_run[0] == per_run[1] == per_run[2]
    assert [r.steps for r in results] == [12, 12, 12]
    assert len({r.cell for r in results}) == 3


def test_the_library_writes_every_output(tmp_path: Path, corpus_file: Path) -> None:
    # A library caller gets all three files and the samples, as the CLI does.
    out = tmp_path / "cmp"
    done = comparison.compare(
        base_config(corpus_file),
        cells=["rnn", "gru"],
        layers=[1],
        hiddens=[8],
        out=out,
        prime="The ",
        sample_length=30,
        reporter=None,
    )
    assert sorted(p.name for p in done.files) == [
        "compare.json", "compare.md", "curves.png", "gradient-flow.png", "report.html"
    ]  # fmt: skip
    assert set(done.flows) == {r.name for r in done.results}
    assert all(p.is_file() for p in done.files)
    results = done.results
    data = json.loads((out / "compare.json").read_text())
    assert [r["name"] for r in data["runs"]] == ["rnn-1x8", "gru-1x8"]
    assert data["best"] == results[best_index(results)].name
    assert [p["step"] for p in data["runs"][0]["curve"]] == [4, 8, 12]
    assert data["shared"]["train"]["steps"] == 12 and "model" not in data["shared"]
    table = (out / "compare.md").read_text()
    assert table.count("\n") == 4 and "**" in table and "| rnn | 1 | 8 |" in table.replace("**", "")
    header = (out / "curves.png").read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert width > 800 and height > 400
    texts = done.samples
    assert set(texts) == {"rnn-1x8", "gru-1x8"} and all(len(t) == 30 for t in texts.values())


def test_resume_keeps_finished_runs_and_continues_the_rest(
    tmp_path: Path, corpus_file: Path
) -> None:
    out = tmp_path / "cmp"
    runs = comparison.plan(
        base_config(corpus_file),
        cells=["rnn", "lstm", "gru"],
        layers=[1],
        hiddens=[8],
        vocab_size=30,
    )
    calls = {"n": 0}

    def stop_in_second_run() -> bool:
        calls["n"] += 1
        return calls["n"] > 12 + 1 + 5  # run 1 (12 steps + the final check), then 5 steps

    with pytest.raises(TrainingInterrupted):
        comparison.run_comparison(runs, out, stop=stop_in_second_run)
    first = (out / "rnn-1x8" / "last.pt").stat().st_mtime_ns
    with pytest.raises(ConfigError, match="--resume"):
        comparison.run_comparison(runs, out)
    results = comparison.run_comparison(runs, out, resume_existing=True)
    assert (out / "rnn-1x8" / "last.pt").stat().st_mtime_ns == first, "finished run redone"
    assert [r.steps for r in results] == [12, 12, 12]
    reference = comparison.run_comparison(runs, tmp_path / "ref")
    assert [r.best_val_loss for r in results] == [r.best_val_loss for r in reference]


def test_compare_command(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "cmp"
    result = runner.invoke(
        app,
        [
            "compare",
            str(corpus_file),
            "--cells",
            "rnn,gru",
            "--layers",
            "1",
            "--hidden",
            "8",
            "--steps",
            "8",
            "--eval-every",
            "4",
            "--batch-size",
            "4",
            "--seq-len",
            "16",
            "--threads",
            "1",
            "--out",
            str(out),
            "--sample-length",
            "20",
            "--prime",
            "The ",
        ],
    )
    assert result.exit_code == 0, result.output
    for text in ("rnn", "gru", "★ best", "parameters", "best val bpc", "── rnn-1x8", "The "):
        assert text in result.stdout, text
    assert {
        "compare.json", "compare.md", "curves.png", "gradient-flow.png", "report.html",
        "rnn-1x8", "gru-1x8",
    } <= {p.name for p in out.iterdir()}  # fmt: skip
    assert "gradient flow, rnn-1x8: The gradient" in result.stdout
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 2 and "<h3>gru-1x8</h3>" in report
    sampled = runner.invoke(app, ["sample", str(out / "gru-1x8"), "-n", "5"])
    assert sampled.exit_code == 0
    bad = runner.invoke(app, ["compare", str(corpus_file), "--layers", "one"])
    assert bad.exit_code == 2 and "comma-separated integers" in bad.stderr
    bad = runner.invoke(app, ["compare", str(corpus_file), "--cells", "rnn,cnn"])
    assert bad.exit_code == 1 and "unknown cell" in bad.stderr


def test_interrupted_compare_says_how_to_resume(
    tmp_path: Path, corpus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise TrainingInterrupted(3, "x", "continue with: charrnn ...")

    monkeypatch.setattr(comparison, "run_comparison", interrupted)
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(corpus_file), "--out", str(out), "--steps", "3"])
    assert result.exit_code == 130
    assert "interrupted at step 3" in result.stderr
    assert f"--resume --out {out}" in result.stderr and "charrnn ..." not in result.stderr


def test_resume_with_changed_settings_is_refused_naming_them(
    tmp_path: Path, corpus_file: Path
) -> None:
    # Before: the remaining cells trained silently under the new settings.
    out = tmp_path / "cmp"
    plan = dict(cells=["rnn", "gru"], layers=[1], hiddens=[8], vocab_size=30)
    comparison.run_comparison(comparison.plan(base_config(corpus_file), **plan), out)  # type: ignore[arg-type]
    longer = replace(
        base_config(corpus_file), train=replace(base_config(corpus_file).train, steps=20)
    )
    with pytest.raises(
        ConfigError, match=r"rnn-1x8 ran with other settings \(train.steps: 12 -> 20\)"
    ):
        comparison.run_comparison(comparison.plan(longer, **plan), out, resume_existing=True)  # type: ignore[arg-type]


def test_out_that_is_a_file_is_a_clear_error(tmp_path: Path, corpus_file: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("mine")
    runs = comparison.plan(
        base_config(corpus_file), cells=["rnn"], layers=[1], hiddens=[8], vocab_size=30
    )
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        comparison.run_comparison(runs, taken)
    assert taken.read_text() == "mine"


def test_a_file_name_matplotlib_would_read_as_mathtext_is_drawn_as_itself(
    tmp_path: Path, corpus_file: Path
) -> None:
    # Before: matplotlib parsed "$\foo{$" as mathtext and raised; nothing was drawn.
    hostile = corpus_file.rename(tmp_path / "p$\\foo{$.txt")
    done = comparison.compare(
        base_config(hostile), cells=["gru"], layers=[1], hiddens=[8], out=tmp_path / "cmp"
    )
    names = sorted(p.name for p in done.files)
    assert "curves.png" in names and "gradient-flow.png" in names and "report.html" in names
    assert "p$\\foo{$" in (tmp_path / "cmp" / "report.html").read_text()
