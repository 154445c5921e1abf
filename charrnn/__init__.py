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

from charrnn._version import __version__
from charrnn.checkpoint import load_model
from charrnn.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.launch import resume, train
from charrnn.model import CharRNN
from charrnn.sample import SampleSettings, generate, stream
from charrnn.vocab import Vocab

__all__ = [
    "CharRNN",
    "CharRNNError",
    "DataConfig",
    "ModelConfig",
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
