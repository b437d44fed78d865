"""Row filters: parsed without eval, YAML values as a user means them, every row either kept,
left out or a clear error."""

from __future__ import annotations

import pytest
from pretrain_records.pipeline.config import row_filters


def test_norwegian_and_other_yaml_11_booleans_stay_strings():
    assert row_filters.parse("language == no").value == "no"
    assert row_filters.parse("lang in [no, sv, on]").value == ("no", "sv", "on")
    assert row_filters.parse("ok == true").value is True
    assert row_filters.parse("n >= 3").value == 3
    keep = row_filters.parse_all(["language in [no, da]"])
    assert row_filters.keeps({"language": "no"}, keep)
    assert not row_filters.keeps({"language": "sv"}, keep)


@pytest.mark.parametrize("found", [[1], {"a": 1}, "text"])
def test_an_ordering_a_value_cannot_take_is_a_row_error(found):
    condition = row_filters.parse("score >= 3")
    with pytest.raises(row_filters.RowError, match="not comparable with 3"):
        condition.met_by({"score": found})
    with pytest.raises(row_filters.RowError, match="not comparable"):
        row_filters.parse("s >= a").met_by({"s": [1]})
