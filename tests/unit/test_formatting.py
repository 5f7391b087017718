"""Times are shown in Asia/Kolkata; formatting is remembered per instant and format."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from app.formatting import IST, format_local_datetime


def test_local_time_is_ist_whatever_the_zone_it_arrives_in():
    instant = datetime(2026, 12, 8, 1, 2, 3, 456789, tzinfo=timezone.utc)
    assert format_local_datetime(instant) == "08 Dec 2026, 06:32"
    assert format_local_datetime(instant.astimezone(IST)) == "08 Dec 2026, 06:32"
    assert format_local_datetime(instant.astimezone(timezone(timedelta(hours=-5)))) == "08 Dec 2026, 06:32"


def test_remembered_answers_keep_formats_and_instants_apart():
    instant = datetime(2026, 12, 8, 1, 2, 3, tzinfo=timezone.utc)
    assert format_local_datetime(instant, "%H:%M") == "06:32"
    assert format_local_datetime(instant, "%H:%M:%S") == "06:32:03"
    assert format_local_datetime(instant + timedelta(microseconds=1), "%H:%M:%S.%f") == "06:32:03.000001"
    assert format_local_datetime(instant + timedelta(seconds=1), "%H:%M:%S") == "06:32:04"
    assert format_local_datetime(None) == ""


def test_instants_within_one_second_share_their_text_unless_fractions_are_shown():
    instant = datetime(2026, 12, 8, 1, 2, 3, 100, tzinfo=timezone.utc)
    later = instant + timedelta(microseconds=800_000)
    assert format_local_datetime(instant, "%H:%M:%S") == format_local_datetime(later, "%H:%M:%S") == "06:32:03"
    assert format_local_datetime(instant, "%S.%f") == "03.000100"
    assert format_local_datetime(later, "%S.%f") == "03.800100"
