"""The episode and stay stored with each event are the ones the read models group by: outcomes' stays and episodes,
attendance's sessions and drug tests' specimens, on a calibrated demo cohort (readmissions, steps, late results)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain.events import event_name
from services.demo import cohort_lines
from services.importer import import_lines
from tests.projections.builders import CLINICIAN


def _rows(wired: Any, sql: str) -> dict[tuple[str, int], tuple[int, int]]:
    with wired.views.transaction() as cursor:
        cursor.execute(sql)
        return {(str(journey), int(version)): (int(episode), int(stay)) for journey, version, episode, stay in cursor.fetchall()}


def test_read_models_and_events_agree_on_episode_and_stay(wired):
    lines = cohort_lines(60, 3, start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert import_lines(wired.journeys, lines, CLINICIAN).ok
    wired.runner.catch_up()
    events = [wired.app.mapper.to_domain_event(n) for n in wired.app.recorder.select_notifications(start=0, limit=10**6)]
    stored = {(str(e.originator_id), e.originator_version): (e.episode, e.stay) for e in events if hasattr(e, "episode")}
    kinds = {(str(e.originator_id), e.originator_version): event_name(e) for e in events}

    stays = _rows(wired, "SELECT journey_id, opened_by, episode_opened_by, opened_by FROM outcome_stays")
    sessions = _rows(wired, "SELECT journey_id, version, episode, stay FROM attendance_sessions")
    specimens = _rows(wired, "SELECT journey_id, collected_by, episode, stay FROM drug_specimens")
    assert len(stays) > 60  # a cohort with something to compare
    assert len(sessions) > 1000
    assert len(specimens) > 100
    assert {kinds[key] for key in stays} <= {"AdmittedToLevel", "WithdrawalManagementStarted", "SteppedUp", "SteppedDown"}
    for rows in (stays, sessions, specimens):
        for key, ids in rows.items():
            assert stored[key] == ids, (kinds[key], key)
    # every stay the events name is a stay of the read model, and every session event is in attendance
    assert {(journey, stay) for (journey, _), (_, stay) in stored.items() if stay is not None} == set(stays)
    assert {key for key, kind in kinds.items() if kind in ("SessionAttended", "SessionMissed")} == set(sessions)
