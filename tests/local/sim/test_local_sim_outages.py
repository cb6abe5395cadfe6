"""Outage schedules as plain functions of simulated time: scope, flapping, lost acknowledgements, spans."""

from __future__ import annotations

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.local.sim.outages import Outage, ack_lost, link_up, outage_seconds, outage_spans, parse_outages


def test_a_fleet_partition_holds_every_link_down_for_its_span_only() -> None:
    outage = Outage("partition", from_s=100.0, to_s=200.0)
    assert [outage.down_at(t) for t in (99.9, 100.0, 150.0, 199.9, 200.0)] == [False, True, True, True, False]
    assert outage.covers(0, 10, "canary")
    assert outage.covers(9, 10, "broad")


def test_scopes_pick_a_ring_or_the_first_share_of_the_devices() -> None:
    ring = Outage("partition", 0.0, 10.0, scope="ring", ring="canary")
    share = Outage("partition", 0.0, 10.0, scope="share", share=0.25)
    assert ring.covers(5, 10, "canary")
    assert not ring.covers(0, 10, "broad")
    assert [share.covers(i, 10, "broad") for i in range(4)] == [True, True, True, False]  # ceil(2.5) = 3


def test_flapping_alternates_down_and_up_periods() -> None:
    flapping = Outage("partition", 0.0, 400.0, flap_s=100.0)
    assert [flapping.down_at(t) for t in (0.0, 99.0, 100.0, 199.0, 200.0, 350.0)] == [
        True, True, False, False, True, False,
    ]  # fmt: skip


def test_link_up_and_lost_acks_follow_the_schedule() -> None:
    outages = (Outage("partition", 600.0, 1200.0, scope="share", share=0.5),)
    assert link_up(outages, 0.0, 0, 2, "canary")
    assert not link_up(outages, 600.0, 0, 2, "canary")
    assert link_up(outages, 600.0, 1, 2, "broad"), "the other half stays up"
    assert ack_lost(outages, 540.0, 60.0, 0, 2, "canary"), "up now, down before the step ends"
    assert not ack_lost(outages, 480.0, 60.0, 0, 2, "canary")
    assert not ack_lost(outages, 540.0, 60.0, 1, 2, "broad")


def test_spans_merge_overlaps_and_seconds_count_each_moment_once() -> None:
    outages = (Outage("partition", 0.0, 100.0), Outage("restart", 50.0, 150.0), Outage("partition", 300.0, 400.0))
    assert outage_spans(outages) == [(0.0, 150.0), (300.0, 400.0)]
    assert outage_seconds(outages) == 250.0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "blackout", "from_s": 0, "to_s": 1}, r"outages\[0\]\.kind: 'blackout'"),
        ({"kind": "partition", "from_s": 5, "to_s": 5}, r"outages\[0\]\.to_s: need 0 <= from_s < to_s"),
        ({"kind": "partition", "from_s": 0, "to_s": 5, "scope": "ring"}, r"outages\[0\]\.ring: name a ring"),
        ({"kind": "restart", "from_s": 0, "to_s": 5, "scope": "share", "share": 0.5}, r"scope is fleet"),
        ({"kind": "partition", "from_s": 0, "to_s": 5, "flap_s": 0}, r"outages\[0\]\.flap_s"),
        ({"kind": "partition", "from_s": 0, "to_s": 5, "share": 1.5, "scope": "share"}, r"outages\[0\]\.share"),
        ({"kind": "partition", "from_s": 0, "to_s": 5, "when": 1}, r"unknown key\(s\) \['when'\]"),
    ],
)
def test_a_bad_outage_entry_names_itself(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_outages([entry], "outages")


def test_outages_round_trip_through_their_summary_form() -> None:
    outage = Outage("partition", 10.0, 20.0, scope="share", share=0.1, flap_s=5.0)
    assert parse_outages([outage.to_dict()], "outages") == (outage,)
