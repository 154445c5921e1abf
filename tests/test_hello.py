from __future__ import annotations

from charrnn.hello import run_hello


def test_lecture_example_learns_hello() -> None:
    result = run_hello()
    assert [chr(s) for s in result.vocab.symbols] == ["e", "h", "l", "o"]
    assert result.sample == "hello"
    assert result.final_loss < 0.05 < result.first_loss
    # after training every prediction matches its target; the two 'l's differ
    assert [r.predicted for r in result.after] == list("ello")
    assert [r.target_char for r in result.after] == list("ello")
    assert [r.input_char for r in result.before] == list("hell")
    assert all(len(r.scores) == 4 for r in result.before + result.after)


def test_other_seeds_learn_it_too() -> None:
    assert all(run_hello(seed=s).sample == "hello" for s in (1, 2, 3))
