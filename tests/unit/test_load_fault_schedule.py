"""LOAD_FAULTS' schedule (loadtest/_fault_schedule.py): parsed, validated, in order."""

from __future__ import annotations

import pytest

from loadtest._fault_schedule import MAX_ENTRIES, parse_schedule
from services.common.faults import FaultSpec


def test_a_schedule_in_start_order_with_each_spec() -> None:
    schedule = parse_schedule(
        "dns@40+10:fail_percent=30; resolver@10+20:block_ms=500,block_every_second=true"
    )
    assert [(f.service, f.start) for f in schedule] == [("resolver", 10), ("dns", 40)]
    assert schedule[0].spec == FaultSpec(block_ms=500, block_every_second=True, duration_s=20)
    assert schedule[1].body()["fail_percent"] == 30
    assert parse_schedule("") == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("postgres@1+5:latency_ms=5", "service"),
        ("dns@x+5:latency_ms=5", r"service@start\+duration"),
        ("dns@1+601:latency_ms=5", "duration"),
        ("dns@1+5:latency_ms=9000", "latency_ms"),
        ("dns@1+5:latncy_ms=5", "latncy_ms"),
        ("dns@1+5:block_every_second=yes,block_ms=5", "block_every_second"),
        ("dns@1+5:", "no fault"),
        (";".join(["dns@1+5:latency_ms=1"] * (MAX_ENTRIES + 1)), "at most"),
    ],
)
def test_a_bad_schedule_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_schedule(text)
