"""charrnn: character-level language models (RNN, LSTM, GRU) from any text file.

The library is usable without the CLI::

    from pathlib import Path
    from charrnn import DataConfig, ModelConfig, RunConfig, TrainConfig, train, load_model, generate

    config = RunConfig(
        DataConfig(path="input.txt"), ModelConfig(cell="gru"), TrainConfig(steps=500)
    )
    train(config, Path("runs/demo"))
    model, vocab, _ = load_model(Path("runs/demo"))
    print(generate(model, vocab, length=200, prime="The ")[0])
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from charrnn._version import __version__

# Names are imported when first used, so `charrnn --help` (and Ctrl-C during start-up)
# does not wait for PyTorch to load.
_EXPORTS = {
    "load_model": "charrnn.checkpoint",
    "DataConfig": "charrnn.config",
    "ModelConfig": "charrnn.config",
    "RunConfig": "charrnn.config",
    "TrainConfig": "charrnn.config",
    "CharRNNError": "charrnn.errors",
    "CharRNN": "charrnn.model.network",
    "Layers": "charrnn.layering",
    "Request": "charrnn.sampling.sampler",
    "SampleSettings": "charrnn.sampling.sampler",
    "generate": "charrnn.sampling.sampler",
    "stream": "charrnn.sampling.sampler",
    "resume": "charrnn.training.launch",
    "train": "charrnn.training.launch",
    "Vocab": "charrnn.data.vocab",
}

if TYPE_CHECKING:
    from charrnn.checkpoint import load_model
    from charrnn.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from charrnn.data.vocab import Vocab
    from charrnn.errors import CharRNNError
    from charrnn.layering import Layers
    from charrnn.model.network import CharRNN
    from charrnn.sampling.sampler import Request, SampleSettings, generate, stream
    from charrnn.training.launch import resume, train


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")


__all__ = [
    "CharRNN",
    "CharRNNError",
    "DataConfig",
    "Layers",
    "ModelConfig",
    "Request",
    "RunConfig",
    "SampleSettings",
    "TrainConfig",
    "Vocab",
    "__version__",
    "generate",
    "load_model",
    "resume",
    "stream",
    "train",
]
