"""A :class:`~charrnn.training.loop.Trainer` as a :class:`~charrnn.checkpoint.Checkpoint` and
back: everything that decides what happens next — weights, optimizer, step, carried
state, counters, random-generator states — so a resumed run continues exactly as if it
had never stopped. Under torchrun every rank takes part (the state is gathered).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from charrnn._version import __version__
from charrnn.checkpoint import Checkpoint, CorpusRecord
from charrnn.errors import CheckpointError

if TYPE_CHECKING:
    from charrnn.training.loop import Trainer


def take(trainer: Trainer) -> Checkpoint:
    """The trainer's whole state (every rank must call it at the same step)."""
    corpus = trainer.dataset.corpus
    rng = trainer.group.rng_states(trainer.device)
    state = (
        [trainer.group.gather(s.detach(), dim=1) for s in trainer.state] if trainer.state else []
    )
    return Checkpoint(
        config=trainer.config,
        vocab=trainer.vocab,
        model=trainer.model.state_dict(),
        optimizer=trainer.optimizer.state_dict(),
        step=trainer.step,
        chars_seen=trainer.chars_seen,
        elapsed_s=trainer.clock.elapsed(),
        bad_steps=trainer.bad_steps,
        best_val_loss=trainer.best_val_loss,
        last_val_loss=trainer.last_val_loss,
        num_parameters=trainer.model.num_parameters,
        corpus=CorpusRecord(corpus.name, corpus.sha256, str(corpus.source.absolute())),
        state=[s.cpu() for s in state],
        finished=trainer.finished,
        stopped_by=trainer.stopped_by,
        since_best=trainer.since_best,
        # The mean over ranks: the reported train loss is linear in it.
        train_loss_sum=trainer.group.mean(float(trainer.loss_sum)),
        train_loss_count=int(trainer.loss_count.item()),
        rng=rng,
        charrnn_version=__version__,
    )


def restore(trainer: Trainer, checkpoint: Checkpoint, path: Path) -> None:
    """Put ``checkpoint`` back into ``trainer``; a CheckpointError if it does not fit."""
    try:
        trainer.model.load_state_dict(checkpoint.model)
        if checkpoint.optimizer is None:
            raise ValueError("it holds no optimizer state")
        trainer.optimizer.load_state_dict(checkpoint.optimizer)
        for group in trainer.optimizer.param_groups:
            # A saved group brings its own "fused" flag (older checkpoints: False on
            # CPU); the skip-on-device logic needs this trainer's choice.
            group["fused"] = trainer.fused_update
            group["foreach"] = None if trainer.fused_update else group.get("foreach")
        trainer.step = checkpoint.step
        trainer.chars_seen = checkpoint.chars_seen
        trainer.clock.banked = checkpoint.elapsed_s
        trainer.bad_base = checkpoint.bad_steps
        trainer.best_val_loss = checkpoint.best_val_loss
        trainer.last_val_loss = checkpoint.last_val_loss
        trainer.since_best = checkpoint.since_best
        trainer.loss_sum = torch.tensor(checkpoint.train_loss_sum, device=trainer.device)
        trainer.loss_count = torch.tensor(float(checkpoint.train_loss_count), device=trainer.device)
        trainer.state = (
            tuple(s[:, trainer.rows].contiguous().to(trainer.device) for s in checkpoint.state)
            if checkpoint.state
            else None
        )
        trainer.group.restore_rng(checkpoint.rng, trainer.device)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot resume from this checkpoint: {exc}") from None
