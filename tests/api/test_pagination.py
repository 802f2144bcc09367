from __future__ import annotations

import pytest

from api.errors import InvalidInput
from api.pagination import decode_cursor, encode_cursor


def test_cursor_round_trip() -> None:
    assert decode_cursor(encode_cursor("2026-11-25T10:00:00Z", "0193")) == ["2026-11-25T10:00:00Z", "0193"]


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", "e30"])  # bad base64, not JSON, an object
def test_tampered_cursor_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput):
        decode_cursor(cursor)
