"""The serving engine in process, without HTTP: chunked prefill, fairness counted in
worker turns (not seconds), the prompt cap, cancellation, echo scoring in the queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from charrnn.config import ModelConfig
from charrnn.data.vocab import Vocab
from charrnn.model.network import CharRNN
from charrnn.model.prefix import run_chunk
from charrnn.sampling.sampler import SampleSettings, generate
from charrnn.scoring.text import score_text
from charrnn.serving import engine as engine_module
from charrnn.serving.engine import Delta, Engine, Job, PromptTooLong, wait_idle

TEXT = "the quick brown fox jumps over a lazy dog; pack my box with five dozen jugs.\n"


@pytest.fixture(scope="module")
def model_vocab() -> tuple[CharRNN, Vocab]:
    """A 2x16 LSTM with random weights: drawing and prefill need no training."""
    torch.manual_seed(0)
    vocab = Vocab.from_text(TEXT)
    model = CharRNN(len(vocab), ModelConfig(cell="lstm", num_layers=2, hidden_size=16))
    return model.eval(), vocab


@pytest.fixture
def make_engine(model_vocab: tuple[CharRNN, Vocab]) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def build(**options: object) -> Engine:
        engine = Engine(*model_vocab, **options)  # type: ignore[arg-type]
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        engine.close(timeout=5)


class Collector:
    """A job's events, and the worker turn at which each came (read inside emit)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.texts: dict[int, str] = {}
        self.turns: list[int] = []  # the turn of every event with text
        self.done = threading.Event()

    def emit(self, deltas: list[Delta] | None) -> None:
        if deltas is None:
            self.done.set()
            return
        if any(d.text for d in deltas):
            self.turns.append(self.engine._turns)
        for d in deltas:
            self.texts[d.index] = self.texts.get(d.index, "") + d.text


def _job(engine: Engine, prompt: str, collector: Collector, **fields: object) -> Job:
    ids = engine.vocab.encode(prompt, on_unknown="error").astype(np.int64)
    settings = fields.pop("settings", SampleSettings(temperature=1.0))
    return Job(
        prompt_ids=ids,
        n=int(fields.pop("n", 1)),  # type: ignore[call-overload]
        max_tokens=int(fields.pop("max_tokens", 40)),  # type: ignore[call-overload]
        settings=settings,  # type: ignore[arg-type]
        emit=collector.emit,
        **fields,  # type: ignore[arg-type]
    )


def _run(engine: Engine, prompt: str, **fields: object) -> Collector:
    collector = Collector(engine)
    assert engine.submit(_job(engine, prompt, collector, **fields))
    assert collector.done.wait(30)
    return collector


def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait (politely: the worker needs the interpreter) until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _long_prompt(chars: int) -> str:
    return (TEXT * (chars // len(TEXT) + 1))[:chars]


def test_chunked_prefill_gives_the_text_of_one_piece_and_of_sample(
    make_engine: Callable[..., Engine], model_vocab: tuple[CharRNN, Vocab]
) -> None:
    prompt = _long_prompt(300)
    chunked = _run(make_engine(prefill_chunk=7), prompt, seed=42, n=3, max_tokens=60)
    whole = _run(make_engine(prefill_chunk=10_000), prompt, seed=42, n=3, max_tokens=60)
    assert chunked.texts == whole.texts
    assert len(set(chunked.texts.values())) == 3  # each row its own text
    model, vocab = model_vocab
    expected = generate(model, vocab, length=60, prime=prompt, seed=42, num_samples=3)
    assert [chunked.texts[i] for i in range(3)] == expected


def test_a_short_prompt_draws_within_a_turn_while_long_prompts_run(
    make_engine: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shortest remaining first: a short request's first character comes within two
    worker turns of its arrival although four long prompts are being run (alone, it
    also takes one or two); and a running stream gets a character every turn meanwhile,
    each turn holding at most one chunk of the long prompts."""
    calls: list[tuple[int, int]] = []  # (turn, positions) of every prefill call

    def counted(model: CharRNN, ids: np.ndarray, state: object) -> object:
        if threading.current_thread() is engine._thread:  # not the engine alone below
            calls.append((engine._turns, ids.shape[1]))
        return run_chunk(model, ids, state)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_module, "run_chunk", counted)
    engine = make_engine(prefill_chunk=16, emit_interval_s=0)  # an event every step
    stream = Collector(engine)
    assert engine.submit(_job(engine, "the", stream, max_tokens=100_000))
    _until(lambda: bool(stream.turns))
    longs = [Collector(engine) for _ in range(4)]
    for c in longs:
        assert engine.submit(_job(engine, _long_prompt(2400), c, max_tokens=5))
    _until(lambda: engine._turns >= stream.turns[0] + 20)  # the long prompts are running
    short = Collector(engine)
    submitted = engine._turns
    assert engine.submit(_job(engine, "a", short, max_tokens=3))
    assert short.done.wait(30)
    assert short.turns[0] - submitted <= 2, (submitted, short.turns)
    assert not any(c.turns for c in longs)  # their prompts (150 turns' worth) still run
    alone_engine = make_engine(prefill_chunk=16)
    alone = Collector(alone_engine)
    assert alone_engine.submit(_job(alone_engine, "a", alone, max_tokens=3))
    assert alone.done.wait(30)
    assert short.turns[0] - submitted <= 2 * max(1, alone.turns[0])  # ratio to alone
    for c in longs:
        assert c.done.wait(60)
    # The stream was never starved: one step (a character) per turn, no turn skipped,
    # from before the long prompts came until they had all run.
    last = max(max(c.turns) for c in longs)
    seen = [t for t in stream.turns if t <= last]
    assert seen == list(range(seen[0], seen[0] + len(seen)))
    assert len(seen) >= 2400 // 16  # the four prompts ran side by side, 16 a turn
    per_turn: dict[int, int] = {}
    for turn, positions in calls:
        per_turn[turn] = per_turn.get(turn, 0) + positions
    assert max(per_turn.values()) <= 16  # never more than one chunk a turn
    stream_job_cancel(engine)


def stream_job_cancel(engine: Engine) -> None:
    with engine._lock:
        jobs = [a.job for a in engine._active]
    for job in jobs:
        job.cancel()
    assert wait_idle(engine, 10)


def test_the_prompt_cap_refuses_and_counts_only_the_text(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(max_prompt_chars=10)
    collector = Collector(engine)
    with pytest.raises(PromptTooLong, match="11 characters; this server takes at most 10"):
        engine.submit(_job(engine, "a" * 11, collector))
    assert engine.submit(_job(engine, "a" * 10, collector, max_tokens=1))
    assert collector.done.wait(30)
    item = Collector(engine)  # an item's leading newline is not the prompt's text
    assert engine.submit(_job(engine, "\n" + "a" * 10, item, text_from=1, max_tokens=1))
    assert item.done.wait(30)


def test_a_cancelled_job_leaves_at_the_next_turn_prefilling_or_decoding(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(prefill_chunk=4)
    decoding, prefilling = Collector(engine), Collector(engine)
    running = _job(engine, "the", decoding, max_tokens=100_000, n=5)
    waiting = _job(engine, _long_prompt(30_000), prefilling, max_tokens=5)
    assert engine.submit(running) and engine.submit(waiting)
    _until(lambda: bool(decoding.turns))
    assert engine.load["active_rows"] == 5 and engine.load["waiting"] == 1
    at = engine._turns
    running.cancel()
    waiting.cancel()
    assert decoding.done.wait(10) and prefilling.done.wait(10)
    assert wait_idle(engine, 10)
    assert engine._turns - at <= 2  # left within the turn under way and the next
    assert engine._stepper.rows == 0  # their rows' state is gone


def test_echo_scoring_runs_in_the_queue_chunked_as_score_does(
    make_engine: Callable[..., Engine], model_vocab: tuple[CharRNN, Vocab]
) -> None:
    prompt = _long_prompt(200)
    got = {}
    for chunk in (5, 10_000):
        engine = make_engine(prefill_chunk=chunk)
        c = Collector(engine)
        job = _job(engine, prompt, c, max_tokens=0, echo=2)
        assert engine.submit(job)
        assert c.done.wait(30)
        assert job.prompt_logprobs is not None
        got[chunk] = job.prompt_logprobs
    entries = got[5]
    assert [e[0] for e in entries] == list(prompt)
    assert entries[0][1] is None and all(e[1] is not None for e in entries[1:])
    assert all(len(e[2] or {}) == 2 for e in entries[1:])
    values = np.array([e[1] for e in entries[1:]])
    assert np.allclose(values, [e[1] for e in got[10_000][1:]], atol=1e-5)
    model, vocab = model_vocab
    expected = score_text(model, vocab, prompt)
    assert np.allclose(-values, expected.surprisal, atol=1e-5)
    # In the bounded queue: with the queue full, an echo job is refused, not run.
    engine = make_engine(prefill_chunk=1, max_queue=1)
    blocker = Collector(engine)
    long_job = _job(engine, _long_prompt(30_000), blocker, max_tokens=1)
    assert engine.submit(long_job)
    refused = _job(engine, prompt, Collector(engine), max_tokens=0, echo=2)
    assert not engine.submit(refused)
    assert refused.prompt_logprobs is None
    long_job.cancel()
    assert blocker.done.wait(10)


def test_characters_are_handed_over_in_groups_first_and_last_at_once(
    make_engine: Callable[..., Engine],
) -> None:
    """With a stream interval, a job's first character goes at once, the rest gathers
    until the interval passes or the row ends; with none, every step is an event."""
    grouped = _run(make_engine(emit_interval_s=3600), "the", seed=1, max_tokens=50)
    each = _run(make_engine(emit_interval_s=0), "the", seed=1, max_tokens=50)
    assert grouped.texts == each.texts and len(grouped.texts[0]) == 50
    assert len(each.turns) == 50
    assert len(grouped.turns) == 2  # the first character, then the other 49 at the end


def test_a_turns_events_for_all_jobs_are_handed_over_in_one_call(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(emit_interval_s=0)
    calls: list[int] = []

    def schedule(deliver: Callable[[], None]) -> None:  # as loop.call_soon_threadsafe
        calls.append(engine._turns)
        deliver()

    engine.hand_over_with(schedule)
    collectors = [Collector(engine) for _ in range(5)]
    for i, c in enumerate(collectors):
        assert engine.submit(_job(engine, "the", c, seed=i, max_tokens=20))
    for c in collectors:
        assert c.done.wait(30)
    events = sum(len(c.turns) for c in collectors)
    assert events == 5 * 20  # an event a step for each job
    assert len(calls) == len(set(calls))  # one hand-over a turn, for every job at once
    assert len(calls) <= engine._turns


def test_echo_after_an_items_newline_scores_only_the_text(
    make_engine: Callable[..., Engine], model_vocab: tuple[CharRNN, Vocab]
) -> None:
    """An item starts after a newline that is not the prompt's text: every prompt
    character is scored given what precedes it, the newline included."""
    prompt = "pack my box"
    engine = make_engine(prefill_chunk=4)
    c = Collector(engine)
    job = _job(engine, "\n" + prompt, c, max_tokens=0, echo=0, text_from=1)
    assert engine.submit(job)
    assert c.done.wait(30)
    assert job.prompt_logprobs is not None
    assert [e[0] for e in job.prompt_logprobs] == list(prompt)
    assert all(e[2] is None for e in job.prompt_logprobs)  # no alternatives asked
    model, vocab = model_vocab
    expected = score_text(model, vocab, "\n" + prompt).surprisal
    assert np.allclose([-e[1] for e in job.prompt_logprobs], expected, atol=1e-5)  # type: ignore[operator]


def test_events_still_arrive_when_the_hand_over_loop_has_closed(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()

    def closed(deliver: Callable[[], None]) -> None:
        raise RuntimeError("Event loop is closed")  # what call_soon_threadsafe raises

    engine.hand_over_with(closed)
    got = _run(engine, "the", seed=3, max_tokens=10)  # the worker lives on
    assert len(got.texts[0]) == 10
