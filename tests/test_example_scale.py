"""HYPOTHESIS_SCALE: the heaviest property tests' counts, scaled (tests/helpers/examples.py)."""

from __future__ import annotations

import pytest

from tests.helpers.examples import SCALE_ENV, ExampleScaleError, examples


def test_the_count_is_make_tests_unless_scaled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCALE_ENV, raising=False)
    assert examples(170) == 170
    monkeypatch.setenv(SCALE_ENV, "4")
    assert examples(170) == 680
    monkeypatch.setenv(SCALE_ENV, "0.001")
    assert examples(170) == 1  # never none at all


@pytest.mark.parametrize("text", ["0", "-2", "four", "nan", ""])
def test_a_scale_that_is_not_a_positive_number_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv(SCALE_ENV, text)
    with pytest.raises(ExampleScaleError, match=f"{SCALE_ENV}=.*give a positive number"):
        examples(10)
