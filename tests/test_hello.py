from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from charrnn.cli.app import app
from charrnn.lecture.hello import run_hello


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


def test_hello_html_shows_the_four_steps_before_and_after(tmp_path: Path) -> None:
    page = tmp_path / "hello.html"
    result = CliRunner().invoke(app, ["hello", "--html", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert text.count('reads "l"') == 4 and text.count('class="box hid"') == 8
    assert "http" not in text.replace("http-equiv", "")  # nothing fetched
    after = text.split("After 300 steps")[1]
    assert after.count("wrong") == 0 and text.split("After 300 steps")[0].count("wrong") > 0
    states = run_hello().after
    assert states[1].hidden != states[2].hidden  # the two l's: different states


def test_hello_html_to_a_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["hello", "--html", str(tmp_path / "no" / "such" / "x.html")])
    assert result.exit_code == 1 and "cannot write" in result.stderr
