"""Sharing a model the way users meet it: ``charrnn export --format hub`` writes a folder
that every command reads back (sampling the same text as the run), that safetensors and
json alone can read, and that is checked as strictly as a checkpoint; ``--format web``
writes one page that runs the model in a browser (tests/test_sharing_page.py)."""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_text, tiny_cli
from typer.testing import CliRunner

from charrnn import files, hub
from charrnn.checkpoint import load_model, resolve_checkpoint
from charrnn.cli.app import app
from charrnn.config import ModelConfig
from charrnn.data.vocab import Vocab
from charrnn.errors import CheckpointError, ConfigError
from charrnn.model.network import CharRNN, parameter_shapes
from charrnn.sampling.sampler import SampleSettings, generate
from charrnn.sharing.export import export
from charrnn.sharing.web import half_keeps_text

runner = CliRunner()


@pytest.fixture(scope="module")
def run(lstm_run: Path) -> Path:
    """The shared 2x16 LSTM run (conftest: trained once for the session)."""
    return lstm_run


@pytest.fixture(scope="module")
def folder(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shared") / "shared-lstm"
    result = runner.invoke(app, ["export", str(run), "--format", "hub", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def copy_of(folder: Path, into: Path) -> Path:
    """A copy of the shared folder to spoil."""
    into.mkdir()
    for name in hub.FILES:
        (into / name).write_bytes((folder / name).read_bytes())
    return into


def test_the_folder_has_weights_config_and_card(folder: Path, run: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(hub.FILES)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["format"] == hub.FORMAT and config["format_version"] == hub.FORMAT_VERSION
    assert config["settings"]["model"]["cell"] == "lstm"
    assert config["vocab_size"] == len(config["vocab"]["symbols"])
    card = (folder / "README.md").read_text(encoding="utf-8")
    front = card.split("---\n")[1]
    assert "library_name: charrnn" in front and "license:" in front
    size = (run.parent / "t.txt").stat().st_size
    assert "- lstm" in front and 'corpus: "t"' in front and f"corpus_bytes: {size}\n" in front
    assert re.search(r"val_loss_nats: \d+\.\d{4}", front)
    assert re.search(r"val_loss_bits: \d+\.\d{4}", front)
    assert "60 steps" in card and "bits/char" in card and "## A sample" in card


def test_the_folder_tells_no_local_paths(folder: Path, run: Path) -> None:
    """The corpus and run paths keep only their names: sharing a model does not say
    where its owner keeps files."""
    where = str(run.parent)
    for name in ("config.json", "README.md"):
        assert where not in (folder / name).read_text(encoding="utf-8")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["settings"]["data"]["path"] == "t.txt"
    assert config["corpus"]["file"] == "t.txt"


def test_the_folder_samples_what_the_run_samples(folder: Path, run: Path) -> None:
    texts = []
    for source in (run, folder):
        model, vocab, _ = load_model(source)
        texts.append(generate(model, vocab, length=120, prime="The ", seed=7)[0])
    assert texts[0] == texts[1]
    _, _, record = load_model(folder)
    _, _, original = load_model(run)
    assert record.step == original.step and record.best_val_loss == original.best_val_loss


def test_every_command_that_reads_a_model_reads_the_folder(
    folder: Path, run: Path, tmp_path: Path
) -> None:
    same = ["--prime", "The ", "--length", "60", "--seed", "3"]
    from_run = runner.invoke(app, ["sample", str(run), *same])
    from_folder = runner.invoke(app, ["sample", str(folder), *same])
    assert from_folder.exit_code == 0, from_folder.output
    assert from_folder.stdout == from_run.stdout
    text = tmp_path / "some.txt"
    text.write_text(make_text(800, seed=5), encoding="utf-8")
    commands = [
        ["info", str(folder)],
        ["info", str(folder / "model.safetensors")],  # a file of the folder names it
        ["score", str(folder), str(text)],
        ["inspect", str(folder), "--text", "The cat", "--out", str(tmp_path / "i.html")],
        ["export", str(folder), "--format", "hub", "-o", str(tmp_path / "again")],
        ["train", str(text), "--init-from", str(folder), "--steps", "3", "--out",
         str(tmp_path / "tuned"), "-q", "--batch-size", "2", "--seq-len", "8"],
    ]  # fmt: skip
    for command in commands:
        result = runner.invoke(app, command)
        assert result.exit_code == 0, (command, result.output)
    assert "lstm" in runner.invoke(app, ["info", str(folder)]).stdout
    again = json.loads((tmp_path / "again" / "config.json").read_text(encoding="utf-8"))
    assert again["vocab"] == json.loads((folder / "config.json").read_text())["vocab"]


def test_serve_loads_the_folder_with_no_code_of_its_own(folder: Path) -> None:
    pytest.importorskip("starlette", reason="charrnn[serve] is not installed")
    from charrnn.serving.server import ServeOptions, load_served

    served = load_served([folder], ServeOptions())
    assert list(served) == ["shared-lstm"]
    assert served["shared-lstm"].facts["cell"] == "lstm"


def test_a_byte_level_items_run_keeps_its_vocabulary_and_items(tmp_path: Path) -> None:
    corpus = tmp_path / "lines.txt"
    corpus.write_text(make_text(3000).replace("mat", "mät"), encoding="utf-8")
    out = tmp_path / "run"
    options = ["--bytes", "--docs", "lines", "--steps", "6", "--out", str(out), "-q"]
    result = runner.invoke(app, ["train", str(corpus), *options, *tiny_cli(seq_len=80)])
    assert result.exit_code == 0, result.output
    shared = export(out, tmp_path / "shared", "hub")
    _, vocab, record = load_model(shared)
    _, original_vocab, original = load_model(out)
    assert vocab == original_vocab and vocab.byte_level and len(vocab) == 256
    assert record.config.data.docs == "lines" == original.config.data.docs
    same = ["-n", "3", "--seed", "1"]
    a = runner.invoke(app, ["sample", str(out), *same])
    b = runner.invoke(app, ["sample", str(shared), *same])
    assert b.exit_code == 0, b.output
    assert a.stdout == b.stdout


@pytest.mark.slow
def test_safetensors_and_json_alone_read_the_folder(folder: Path) -> None:
    """No charrnn, no torch: the weights' names and shapes follow from config.json."""
    script = f"""
import json, sys
from safetensors.numpy import load_file
folder = {str(folder)!r}
config = json.load(open(folder + "/config.json", encoding="utf-8"))
weights = load_file(folder + "/model.safetensors")
m, V = config["settings"]["model"], config["vocab_size"]
assert len(config["vocab"]["symbols"]) == V
assert weights["head.weight"].shape == (V, m["hidden_size"])
assert weights["embedding.weight"].shape == (V, m["embed_size"])
assert weights["rnn.weight_hh_l1"].shape == (4 * m["hidden_size"], m["hidden_size"])
assert "torch" not in sys.modules and "charrnn" not in sys.modules
print(sorted(weights))
"""
    done = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    want = parameter_shapes("lstm", 2, 16, 8, 1)
    assert eval(done.stdout) == sorted(want)


def test_parameter_shapes_are_the_models() -> None:
    for cell in ("rnn", "lstm", "gru"):
        for embed in (0, 5):
            model = CharRNN(
                7, ModelConfig(cell=cell, num_layers=2, hidden_size=3, embed_size=embed)
            )
            own = {name: tuple(t.shape) for name, t in model.state_dict().items()}
            assert own == parameter_shapes(cell, 2, 3, embed, 7)


# -- hostile folders --------------------------------------------------------------


def _config(folder: Path) -> dict[str, object]:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def _write_config(folder: Path, config: object) -> None:
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return dict(load_file(folder / "model.safetensors"))


def _write_weights(folder: Path, weights: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file(weights, folder / "model.safetensors")


def spoil_types(f: Path) -> None:
    config = _config(f)
    config["settings"]["model"]["hidden_size"] = "16"  # type: ignore[index]
    _write_config(f, config)


def spoil_vocab_size(f: Path) -> None:
    config = _config(f)
    config["vocab"]["symbols"] = config["vocab"]["symbols"][:-1]  # type: ignore[index]
    config["vocab_size"] -= 1  # type: ignore[operator]
    _write_config(f, config)


def spoil_vocab_size_field(f: Path) -> None:
    _write_config(f, {**_config(f), "vocab_size": 3})


def spoil_missing_tensor(f: Path) -> None:
    weights = _weights(f)
    del weights["rnn.weight_hh_l1"]
    _write_weights(f, weights)


def spoil_unknown_tensor(f: Path) -> None:
    _write_weights(f, {**_weights(f), "extra.weight": torch.zeros(2)})


def spoil_shape(f: Path) -> None:
    weights = _weights(f)
    weights["head.bias"] = torch.zeros(5)
    _write_weights(f, weights)


def spoil_integer_weights(f: Path) -> None:
    weights = _weights(f)
    weights["head.bias"] = weights["head.bias"].long()
    _write_weights(f, weights)


def spoil_nan(f: Path) -> None:
    weights = _weights(f)
    weights["rnn.weight_ih_l0"][0, 0] = math.nan
    _write_weights(f, weights)


def spoil_truncated(f: Path) -> None:
    data = (f / "model.safetensors").read_bytes()
    (f / "model.safetensors").write_bytes(data[: len(data) // 2])


def spoil_not_json(f: Path) -> None:
    (f / "config.json").write_text("{'format': nope", encoding="utf-8")


def spoil_deep_json(f: Path) -> None:
    (f / "config.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")


def spoil_json_list(f: Path) -> None:
    _write_config(f, [1, 2, 3])


def spoil_newer(f: Path) -> None:
    _write_config(f, {**_config(f), "format_version": 99})


def spoil_huge(f: Path) -> None:
    config = _config(f)
    config["settings"]["model"]["hidden_size"] = 10**7  # type: ignore[index]
    _write_config(f, config)


def spoil_bad_loss(f: Path) -> None:
    config = _config(f)
    config["training"]["step"] = -4  # type: ignore[index]
    _write_config(f, config)


def spoil_no_weights(f: Path) -> None:
    (f / "model.safetensors").unlink()


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, witness: Path) -> None:
        self.witness = witness

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.witness,))


def spoil_pickle(f: Path) -> None:
    """A pickle (and a torch file) where the weights should be."""
    (f / "model.safetensors").write_bytes(pickle.dumps(_Payload(f.parent / "ran")))


def spoil_torch_file(f: Path) -> None:
    torch.save({"x": _Payload(f.parent / "ran")}, f / "model.safetensors")


SPOILED = {
    "wrong types": (spoil_types, "hidden"),
    "vocabulary smaller than the weights": (spoil_vocab_size, "do not fit"),
    "vocab_size field that lies": (spoil_vocab_size_field, "vocab_size"),
    "missing tensor": (spoil_missing_tensor, "missing rnn.weight_hh_l1"),
    "unknown tensor": (spoil_unknown_tensor, "unknown extra.weight"),
    "wrong shape": (spoil_shape, "head.bias"),
    "integer weights": (spoil_integer_weights, "I64"),
    "NaN weights": (spoil_nan, "not finite"),
    "truncated safetensors": (spoil_truncated, "truncated"),
    "config that is not JSON": (spoil_not_json, "not JSON"),
    "config nested 100000 deep": (spoil_deep_json, "not JSON"),
    "config that is a list": (spoil_json_list, "not a charrnn model"),
    "newer format": (spoil_newer, "newer charrnn"),
    "settings for a huge model": (spoil_huge, "larger than"),
    "negative step": (spoil_bad_loss, "step"),
    "no weights file": (spoil_no_weights, "model.safetensors"),
    "pickle as weights": (spoil_pickle, "safetensors"),
    "torch file as weights": (spoil_torch_file, "safetensors"),
}


@pytest.mark.parametrize("case", list(SPOILED))
def test_a_hostile_folder_is_one_clear_line(case: str, folder: Path, tmp_path: Path) -> None:
    spoil, words = SPOILED[case]
    spoiled = copy_of(folder, tmp_path / "spoiled")
    spoil(spoiled)
    for command in (["info", str(spoiled)], ["sample", str(spoiled), "--length", "5"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, (case, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert words in lines[0], lines[0]
    with pytest.raises(CheckpointError):
        load_model(spoiled)
    assert not (tmp_path / "ran").exists()  # no code ran


def test_a_folder_without_config_is_not_taken_for_a_model(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"no best\.pt or last\.pt"):
        resolve_checkpoint(tmp_path)


# -- writing the folder -------------------------------------------------------------


def test_an_existing_folder_needs_overwrite_and_is_then_replaced(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "shared"
    export(run, out, "hub")
    first = (out / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="--overwrite"):
        export(run, out, "hub")
    (out / "README.md").write_text("edited", encoding="utf-8")
    export(run, out, "hub", overwrite=True)
    assert (out / "model.safetensors").read_bytes() == first
    assert (out / "README.md").read_text(encoding="utf-8") != "edited"
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]  # no temporary left


def test_overwrite_never_deletes_files_charrnn_did_not_write(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "diary.txt").write_text("keep me", encoding="utf-8")
    result = runner.invoke(
        app, ["export", str(run), "--format", "hub", "-o", str(out), "--overwrite"]
    )
    assert result.exit_code == 1 and "diary.txt" in result.stderr
    assert (out / "diary.txt").read_text(encoding="utf-8") == "keep me"
    plain = tmp_path / "file"
    plain.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a folder"):
        export(run, plain, "hub", overwrite=True)


def test_a_failed_write_leaves_the_old_folder_whole(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "shared"
    export(run, out, "hub")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    opened = []

    def failing(path: Path):  # type: ignore[no-untyped-def]
        opened.append(path)
        if len(opened) == 2:
            raise OSError(28, "No space left on device")
        return path.open("wb")

    monkeypatch.setattr(files, "_create", failing)
    with pytest.raises(ConfigError, match="No space left"):
        export(run, out, "hub", overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]
    opened.clear()
    with pytest.raises(ConfigError, match="No space left"):
        export(run, tmp_path / "new", "hub")
    assert not (tmp_path / "new").exists()  # never a half folder


# -- the web page's weights --------------------------------------------------------


def test_half_precision_is_refused_when_it_changes_the_greedy_text() -> None:
    """Two characters 5e-6 apart in score: float16 rounds them equal, and the greedy
    choice moves to the first; float32 keeps the text."""
    vocab = Vocab.from_text("ab\n")
    model = CharRNN(len(vocab), ModelConfig(cell="rnn", num_layers=1, hidden_size=4))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 0.1, 0.1 + 5e-6]))
    greedy = SampleSettings(temperature=0)
    assert generate(model, vocab, length=3, settings=greedy, seed=0)[0] == "bbb"
    assert not half_keeps_text(model, vocab)
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([0.0, 0.1, 0.5]))
    assert half_keeps_text(model, vocab)
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([0.0, 0.1, 1e6]))  # beyond float16
    assert not half_keeps_text(model, vocab)


def test_the_page_is_one_file_with_nothing_to_fetch(run: Path, tmp_path: Path) -> None:
    page = export(run, tmp_path / "model.html", "web").read_text(encoding="utf-8")
    assert "default-src 'none'" in page  # the browser itself refuses any fetch
    assert not re.search(r"""(src|href)=["'](https?:|//)""", page)
    model = json.loads(re.search(r'id="model">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert model["cell"] == "lstm" and model["layers"] == 2 and model["vocab_size"] > 10
    assert model["precision"] in ("float16", "float32")
    assert os.path.getsize(tmp_path / "model.html") < 200_000


def test_a_hostile_corpus_name_stays_text_in_the_page_and_the_card(run: Path) -> None:
    from charrnn.checkpoint import CorpusRecord
    from charrnn.sharing.hub import model_card
    from charrnn.sharing.web import web_page

    model, _, checkpoint = load_model(run)
    hostile = "</script><script>alert(1)</script>\n---\nlicense: stolen"
    checkpoint.corpus = CorpusRecord(hostile, "", "")
    page = web_page(model, checkpoint)
    assert "<script>alert" not in page and "&lt;/script&gt;" in page
    card = model_card(checkpoint, "a ``` fence and ```` a longer one", None)
    front = card.split("---\n")[1]
    assert "\nlicense: stolen" not in front and "\nlicense:  # yours" in front
    fence = re.search(r"\n(`{3,})\n", card).group(1)  # type: ignore[union-attr]
    assert len(fence) == 5


def test_resuming_a_folder_points_to_init_from(folder: Path) -> None:
    result = runner.invoke(app, ["train", "--resume", str(folder)])
    assert result.exit_code == 1
    assert "no training state to resume" in result.stderr and "--init-from" in result.stderr
