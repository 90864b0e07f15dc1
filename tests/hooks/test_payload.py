"""hooks/payload.py: what a hook stores of a payload's text."""

from __future__ import annotations

import pytest

from claude_memoir.config import load_settings
from claude_memoir.hooks.payload import clean_text, clean_value
from claude_memoir.text import truncate_middle


@pytest.mark.parametrize("shift", range(0, 44, 3))
def test_a_cut_never_leaves_part_of_a_secret(shift: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounded before redacted: the cut must not split a key from its secret.

    The cut lands at every offset of the repeating pattern as ``shift`` moves.
    """
    monkeypatch.setenv("MEMOIR_MAX_STORED_CHARS", "1000")
    text = "x" * shift + "password=Tr0ub4dor&3 token=ghp_" + "b" * 36 + " " * 1
    stored = clean_text(text * 200, load_settings())
    assert "characters elided" in stored
    assert "ub4dor" not in stored and "bbbbbbbbbbbbbbbb" not in stored, stored
    value = clean_value({"stdout": text * 200}, load_settings())
    assert "ub4dor" not in str(value) and "bbbbbbbbbbbbbbbb" not in str(value)


def test_whole_word_cut_stays_bounded_without_whitespace() -> None:
    text = "y" * 50_000
    cut = truncate_middle(text, 1000, whole_words=True)
    assert len(cut) < 1000 + 60
    assert "characters elided" in cut


def test_plain_cut_keeps_head_and_tail_exactly() -> None:
    text = "".join(chr(65 + i % 26) for i in range(10_000))
    cut = truncate_middle(text, 900)
    assert cut.startswith(text[:600]) and cut.endswith(text[-300:])
    assert "9100 characters elided" in cut
