"""The one definition of where an answer ends (``autojudge_harness.endings``)."""

import pytest

from autojudge_harness.endings import cut_at_stop, end_token_ids, truncate_at_eos


def test_end_token_ids_from_config_values():
    assert end_token_ids(2, [2, 0], None) == (0, 2)
    assert end_token_ids(None, None) == ()
    with pytest.raises(ValueError, match="token ids must be integers, got '2'"):
        end_token_ids(["2"])


def test_cuts():
    assert truncate_at_eos([5, 6, 0, 7], {0}) == [5, 6]
    assert truncate_at_eos([5, 6], {0}) == [5, 6]
    assert cut_at_stop("a\n\nQuestion: b</s>", ("</s>", "Question:")) == "a\n\n"
    assert cut_at_stop("abc", ("", "z")) == "abc"
