"""The bulk upload's fast decoder: it takes only rows the pydantic row schema would take, with
the same values, and leaves everything else to the generic path (pure: no I/O)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from geo.devices import ingest
from geo.devices.schemas import LocationRow

JSON = "application/json"
NDJSON = "application/x-ndjson"


def test_a_plain_body_decodes_to_plain_rows_in_both_json_forms():
    rows = [{"id": "d-1", "lat": 23.1, "lon": 113}, {"id": "d:2", "lat": -90, "lon": 180.0}]
    for body in (rows, {"devices": rows, "source": "ignored"}):
        decoded = ingest.parse_payload(json.dumps(body).encode(), JSON, 10)
        assert [type(r) for r in decoded] == [ingest.PlainRow, ingest.PlainRow]
        assert [(r.id, r.lat, r.lon) for r in decoded] == [
            ("d-1", 23.1, 113.0),
            ("d:2", -90.0, 180.0),
        ]


@pytest.mark.parametrize(
    "odd",
    [
        {"id": "d1\n", "lat": 1, "lon": 1},  # Python's $ would let the newline through
        {"id": "d1", "lat": 90.5, "lon": 1},
        {"id": "d1", "lat": "1.5", "lon": 1},
        {"id": "d1", "lat": 1, "lon": 1, "opted_in": False},
        {"id": "d1", "lat": 1},
        "not an object",
    ],
)
def test_one_row_the_fast_decoder_refuses_sends_the_body_down_the_generic_path(odd):
    body = json.dumps([{"id": "d0", "lat": 1, "lon": 1}, odd]).encode()
    assert ingest.parse_payload(body, JSON, 10) == [{"id": "d0", "lat": 1, "lon": 1}, odd]


def test_nan_is_left_to_the_generic_path_and_its_validator():
    rows = ingest.parse_payload(b'[{"id": "d0", "lat": NaN, "lon": 1}]', JSON, 10)
    with pytest.raises(ValidationError, match="finite number"):
        LocationRow.model_validate(rows[0])


def test_ndjson_lines_are_decoded_one_by_one():
    body = b'{"id": "a", "lat": 1, "lon": 2}\n{"id": "b", "lat": 1, "lon": 2, "at": null}\n{"id'
    plain, wide, broken = ingest.parse_payload(body, NDJSON, 10)
    assert type(plain) is ingest.PlainRow and plain.id == "a"
    assert wide == {"id": "b", "lat": 1, "lon": 2, "at": None}
    assert broken == ingest.Unreadable(3, "not valid JSON")


def test_too_many_plain_rows_is_a_payload_error():
    body = json.dumps([{"id": f"d{i}", "lat": 1, "lon": 1} for i in range(3)]).encode()
    with pytest.raises(ingest.PayloadError, match="3 rows is more than 2"):
        ingest.parse_payload(body, JSON, 2)


ids = st.text(alphabet="abcXYZ019._:-\n /é", min_size=0, max_size=6) | st.just("x" * 129)
coords = st.floats(min_value=-200, max_value=200) | st.integers(-200, 200)


@settings(max_examples=200, deadline=None)
@given(ident=ids, lat=coords, lon=coords)
def test_the_fast_decoder_accepts_a_subset_of_the_row_schema_with_equal_values(ident, lat, lon):
    raw = {"id": ident, "lat": lat, "lon": lon}
    [row] = ingest.parse_payload(json.dumps([raw]).encode(), JSON, 10)
    if type(row) is ingest.PlainRow:
        checked = LocationRow.model_validate(raw)
        assert (checked.id, checked.lat, checked.lon) == (row.id, row.lat, row.lon)
    else:
        assert row == raw
        with pytest.raises(ValidationError):
            LocationRow.model_validate(raw)
