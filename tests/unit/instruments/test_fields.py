"""Field paths (instruments.md §1.3 and §3 numbering) and the shared helpers."""
from __future__ import annotations

from datetime import datetime

import pytest

from app.integrations.instruments.fields import FieldPath, parse_field_path, parse_timestamp, select


@pytest.mark.parametrize("text, expected", [
    ("OBR-2", FieldPath("OBR", 2)),
    ("OBR-3", FieldPath("OBR", 3)),
    ("SPM-2", FieldPath("SPM", 2)),
    ("SPM-2.1.1", FieldPath("SPM", 2, 1, 1)),
    ("OBX-3.1", FieldPath("OBX", 3, 1)),
    ("MSH-16", FieldPath("MSH", 16)),
    ("O-3", FieldPath("O", 3)),
    ("O-3.3", FieldPath("O", 3, 3)),
    ("O-4.3", FieldPath("O", 4, 3)),
    ("R-3.4", FieldPath("R", 3, 4)),
    ("R-3.5", FieldPath("R", 3, 5)),
    ("Q-3.3", FieldPath("Q", 3, 3)),
    (" obr-3 ", FieldPath("OBR", 3)),
])
def test_parse_field_path(text, expected):
    path = parse_field_path(text)
    assert path == expected
    assert parse_field_path(str(path)) == path


@pytest.mark.parametrize("text", ["", "OBR", "OBR-", "OBR-0", "OBR-3.0", "OB-3", "OBRX-3", "OBR-3.1.1.1",
                                  "OBR-a", "OBR 3", "R-3,4", "1BR-3", "OBR-3."])
def test_bad_field_paths_say_what_is_expected(text):
    with pytest.raises(ValueError, match="field path|start at 1"):
        parse_field_path(text)


def test_leaf_defaults_to_first_component_and_subcomponent():
    assert parse_field_path("SPM-2").leaf() == FieldPath("SPM", 2, 1, 1)
    assert parse_field_path("O-4.3").leaf() == FieldPath("O", 4, 3, 1)


def test_select_takes_first_repetition_then_component_then_subcomponent():
    raw = "24061177&BARCODE^F1&X~SECOND"
    opts = dict(repeat="~", component="^", subcomponent="&")
    assert select(raw, FieldPath("SPM", 2), **opts) == "24061177&BARCODE^F1&X"
    assert select(raw, FieldPath("SPM", 2, 1), **opts) == "24061177&BARCODE"
    assert select(raw, FieldPath("SPM", 2, 1, 1), **opts) == "24061177"
    assert select(raw, FieldPath("SPM", 2, 2, 2), **opts) == "X"
    assert select(raw, FieldPath("SPM", 2, 5), **opts) == ""
    assert select(raw, FieldPath("SPM", 2, 1, 9), **opts) == ""


def test_select_without_subcomponent_delimiter_as_in_astm():
    opts = dict(repeat="\\", component="^", subcomponent=None)
    assert select("^^   24061205^B", FieldPath("O", 4, 3, 1), **opts) == "   24061205"
    assert select("^^   24061205^B", FieldPath("O", 4, 3, 2), **opts) == ""


def test_timestamps_drop_the_offset_and_keep_wall_time():
    assert parse_timestamp("20240612120000+0530") == datetime(2024, 6, 12, 12, 0, 0)
    assert parse_timestamp("20240612") == datetime(2024, 6, 12)
    assert parse_timestamp("202406121230") == datetime(2024, 6, 12, 12, 30)
    assert parse_timestamp("20240612123045.1234") == datetime(2024, 6, 12, 12, 30, 45, 123400)
    assert parse_timestamp("  ") is None
    for bad in ("2024", "20241312", "yesterday", "20240612253000"):
        with pytest.raises(ValueError):
            parse_timestamp(bad)
