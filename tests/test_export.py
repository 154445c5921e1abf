"""``charrnn export``: the ONNX graph in onnxruntime and the TorchScript module give
charrnn's logits for a whole priming text, and the plain-Python sampler on export's docs
page (docs/commands/export.md) runs."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_text, tiny_cli
from typer.testing import CliRunner

from charrnn._version import __version__
from charrnn.checkpoint import load_model
from charrnn.cli.app import app
from charrnn.config import ModelConfig
from charrnn.data.vocab import Vocab
from charrnn.model.network import CharRNN
from charrnn.sharing.graph import to_onnx, to_torchscript

ort = pytest.importorskip(
    "onnxruntime", reason="the onnx extra is not installed (pip install 'charrnn[onnx]')"
)
runner = CliRunner()
PRIME = "The cat sat on the mat.\nAnd then came back home to sleep under a warm blue sky."
EXPORT_PAGE = Path(__file__).resolve().parents[1] / "docs" / "commands" / "export.md"


def onnx_logits(data: bytes, ids: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(data)
    meta = json.loads(session.get_modelmeta().custom_metadata_map["charrnn"])
    state = np.zeros((meta["state_parts"], meta["layers"], 1, meta["hidden"]), np.float32)
    rows = []
    for i in ids:
        logits, state = session.run(None, {"ids": np.array([i]), "state": state})
        rows.append(logits[0])
    return np.stack(rows)


@pytest.mark.parametrize(("cell", "embed"), [("lstm", 8), ("gru", 8), ("rnn", 0)])
def test_onnx_and_torchscript_match_charrnn_over_a_priming_text(cell: str, embed: int) -> None:
    vocab = Vocab.from_text(PRIME)
    torch.manual_seed(0)
    model = CharRNN(
        len(vocab), ModelConfig(cell=cell, num_layers=2, hidden_size=24, embed_size=embed)
    )
    model.eval()
    ids = vocab.encode(PRIME).astype(np.int64)
    with torch.no_grad():
        reference = model(torch.from_numpy(ids)[None])[0][0].numpy()
    assert np.abs(onnx_logits(to_onnx(model, vocab), ids) - reference).max() < 1e-4
    scripted = torch.jit.load(io.BytesIO(to_torchscript(model, vocab)))
    parts = 2 if cell == "lstm" else 1
    state = torch.zeros(parts, 2, 1, 24)
    rows = []
    for i in ids:
        logits, state = scripted(torch.tensor([int(i)]), state)
        rows.append(logits[0])
    assert np.abs(torch.stack(rows).detach().numpy() - reference).max() < 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    corpus = folder / "t.txt"
    corpus.write_text(make_text(5000), encoding="utf-8")
    run = folder / "run"
    result = runner.invoke(
        app, ["train", str(corpus), "--steps", "40", "--out", str(run), "-q", *tiny_cli()]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["export", str(run), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert f"wrote {run / 'model.onnx'}" in result.stderr
    return run


def test_an_exported_run_gives_the_runs_logits(exported: Path) -> None:
    model, vocab, _ = load_model(exported)
    ids = vocab.encode(PRIME).astype(np.int64)
    with torch.no_grad():
        reference = model(torch.from_numpy(ids)[None])[0][0].numpy()
    logits = onnx_logits((exported / "model.onnx").read_bytes(), ids)
    assert np.abs(logits - reference).max() < 1e-4


def test_the_readme_sampler_runs_without_charrnn(exported: Path, tmp_path: Path) -> None:
    page = EXPORT_PAGE.read_text(encoding="utf-8")
    block = re.search(r"<!-- onnx-example -->\s*```python\n(.*?)```", page, re.S)
    assert block, "docs/commands/export.md lost its ONNX example"
    code = block.group(1).replace("runs/shakespeare/model.onnx", str(exported / "model.onnx"))
    script = tmp_path / "sampler.py"
    script.write_text("import sys\nsys.modules['charrnn'] = None  # must not need it\n" + code)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    vocab = load_model(exported)[1]
    assert len(done.stdout) >= 200 and all(c in vocab for c in done.stdout.replace("\n", ""))


def test_export_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(tmp_path), "--format", "onnx"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    result = runner.invoke(app, ["export", str(tmp_path), "--format", "tflite"])
    assert result.exit_code == 2


def test_the_onnx_file_says_which_charrnn_run_and_step_made_it(exported: Path) -> None:
    import onnx

    graph = onnx.load(str(exported / "model.onnx"))
    meta = json.loads({p.key: p.value for p in graph.metadata_props}["charrnn"])
    assert meta["version"] == __version__
    assert meta["run"] == str(exported.resolve())
    assert meta["step"] == load_model(exported)[2].step == 40
