"""A bad portal: every kind of fault at once, and still every valid dossier ends synced,
in its latest state, each step once, with the contract's rules kept throughout."""

from __future__ import annotations

import io
import json

from app.mockportal.testing import MockPortalHandle
from tests.e2e.conftest import Store
from tests.e2e.helpers import (
    G05,
    H26,
    H29,
    PROGRESS,
    SYNC,
    UNITS,
    assert_all_synced,
    assert_conformant,
    assert_portal_holds,
    assert_statuses_never_go_back,
    assert_store_matches_sources,
    e2e_settings,
    refusals,
    running,
    sent_items,
)
from tests.sync.polling import simulator, source_settings


def add_faults(mock: MockPortalHandle) -> None:
    control = mock.control
    # Evaluated in this order; the first rule that fires decides.
    control.add_fault(  # a lost answer: stored, the connection cut
        selector={"agency": H26, "service": SYNC},
        action={"type": "commit_then_drop"},
        schedule={"kind": "first_n", "n": 1},
    )
    control.add_fault(  # a portal that lies about one batch of creates
        selector={"agency": H29, "service": SYNC},
        action={"type": "ack_then_lose"},
        schedule={"kind": "first_n", "n": 1},
    )
    control.add_fault(  # ... and about every 6th progress call
        selector={"service": PROGRESS},
        action={"type": "ack_then_lose"},
        schedule={"kind": "every_nth", "n": 6},
    )
    control.add_fault(  # slower than the client waits: it gives up, the portal stores
        selector={"agency": H26, "service": PROGRESS},
        action={"type": "latency", "latency_ms": 1000},
        schedule={"kind": "first_n", "n": 1},
    )
    control.add_fault(  # never answers
        selector={"agency": G05},
        action={"type": "hang"},
        schedule={"kind": "first_n", "n": 1},
    )
    control.add_fault(  # rate limited, with Retry-After
        selector={"agency": H29},
        action={"type": "rate_limit", "retry_after_s": 1},
        schedule={"kind": "every_nth", "n": 5},
        max_uses=1,
    )
    control.add_fault(  # sessions that die every 7th call
        action={"type": "expire_session"},
        schedule={"kind": "every_nth", "n": 7},
    )
    control.add_fault(  # an unreliable portal, reproducibly
        action={"type": "http_error", "status": 503},
        schedule={"kind": "probability", "probability": 0.1, "seed": 7},
        max_uses=3,
    )
    control.add_fault(
        action={"type": "http_error", "status": 502},
        schedule={"kind": "probability", "probability": 0.05, "seed": 8},
        max_uses=1,
    )


async def test_every_valid_dossier_ends_synced_through_every_fault(
    store: Store, mock_portal: MockPortalHandle, captured_logs: io.StringIO
) -> None:
    control = mock_portal.control
    with (
        # Two sources; each owns its units' dossiers, so that they never share one.
        simulator("opencps", dossiers=16, seed=21, units=(H26,)) as (opencps, opencps_control),
        simulator("igate", dossiers=16, seed=22, units=(H29, G05), bad_data_share=0.1) as (
            igate,
            igate_control,
        ),
    ):
        settings = e2e_settings(
            store.url,
            mock_portal.url,
            [
                source_settings("opencps", opencps.url, page_size=6),
                source_settings("igate", igate.url, page_size=6),
            ],
            timeout_s=0.7,
        )
        add_faults(mock_portal)
        async with running(settings, store.sessions, mock_portal) as harness:
            await harness.settle()
            opencps_control.mutate(12)
            igate_control.mutate(12)
            await harness.settle()

            valid = await assert_store_matches_sources(
                harness,
                store.catalogue,
                [("opencps", opencps_control.truth()), ("igate", igate_control.truth())],
            )
            stored = await harness.stored()

    assert len(valid) >= 30
    assert_all_synced(stored)
    assert_portal_holds(control, stored.values())
    assert {d["MaHoSo"] for u in UNITS for d in control.dossiers(u)} == set(stored)

    # Every fault fired.
    fired = {rule["id"]: rule["fired"] for rule in control.faults()}
    assert all(fired.values()), control.faults()

    sent = sent_items(control)
    assert not refusals(sent), refusals(sent)
    assert_statuses_never_go_back(sent)
    assert_conformant(control)
    # Personal data never reaches a log line in clear (contract §8).
    logs = captured_logs.getvalue()
    for s in stored.values():
        for key in ("ChuHoSo", "SoGiayToChuHoSo", "SoDienThoai", "Email"):
            value = s.state.get(key)
            if value:
                assert json.dumps(value, ensure_ascii=False)[1:-1] not in logs, key
