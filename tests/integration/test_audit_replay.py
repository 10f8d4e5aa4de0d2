"""Bitemporal replay against histories worked out by hand, on SQLite and PostgreSQL.

`as_of` is clinical time (what had happened by then, as known now: late results and corrections
included); `as_recorded` is recorded time (only what had been recorded by then). Each expected state
below is worked out from the history in the builder's docstring, not computed by the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.replay import Replay
from services.bootstrap import Continuum
from services.reads import Reader
from tests.integration.audit_builders import (
    LAB,
    SUPERVISOR,
    admitted,
    cli,
    cli_json,
    correction_history,
    cut,
    day,
    drug_test_history,
    jid,
    plain,
    registered,
    send,
)

SURVEYOR = Reader("surveyor-2", "surveyor", "state licensing survey")


def replayed(wired: Continuum, client: str, *, as_of: datetime | None = None, as_recorded: datetime | None = None) -> Replay:
    wired.runner.catch_up()
    return wired.audit.replay(client, SURVEYOR, as_of=as_of, as_recorded=as_recorded)


def versions(result: Replay) -> list[int]:
    return [entry.version for entry in result.entries]


# -- a drug-test result that arrives days after collection ------------------------------------------


def test_a_late_result_is_pending_as_recorded_before_it_arrived(wired):
    history = drug_test_history(wired)

    before = replayed(wired, history.client, as_recorded=history.before_result)
    assert before.state.pending_specimens == ["sp-1"]
    assert before.state.results == {}
    assert versions(before) == [1, 2, 3]
    assert [entry.type for entry in before.entries] == ["ClientRegistered", "AdmittedToLevel", "DrugTestCollected"]
    assert (before.state.status, before.state.level, before.state.site, before.state.track) == ("in_treatment", "2.1", "north", "evening")

    # asking about a clinical moment after the result, but as the record stood before it arrived
    still_before = replayed(wired, history.client, as_of=day(25), as_recorded=history.before_result)
    assert still_before.state.pending_specimens == ["sp-1"]
    assert still_before.state.results == {}


def test_a_late_result_is_pending_as_of_the_collection_day_and_resulted_after_the_result_day(wired):
    history = drug_test_history(wired)

    # the collection day, as known now: the result's clinical time (day 23) is later
    collection_day = replayed(wired, history.client, as_of=day(20) + timedelta(hours=8))
    assert collection_day.state.pending_specimens == ["sp-1"]
    assert collection_day.state.results == {}
    assert versions(collection_day) == [1, 2, 3]

    # the day before the result: still pending, though the result was recorded long ago by now
    assert replayed(wired, history.client, as_of=day(22)).state.pending_specimens == ["sp-1"]

    after = replayed(wired, history.client, as_of=day(23) + timedelta(hours=1))
    assert after.state.pending_specimens == []
    assert after.state.results == {"sp-1": "negative"}
    assert versions(after) == [1, 2, 3, 4]
    result = after.entries[-1]
    assert (result.type, result.occurred_at, result.recorded_by) == ("DrugTestResulted", history.resulted, {"id": LAB.id, "role": LAB.role})
    assert result.recorded_at > history.before_result
    assert result.details["specimen_id"] == "sp-1"

    now = replayed(wired, history.client)
    assert (now.state.pending_specimens, now.state.results) == ([], {"sp-1": "negative"})


def test_nothing_is_known_as_recorded_before_the_first_event(wired):
    before_anything = cut()
    history = drug_test_history(wired)
    empty = replayed(wired, history.client, as_recorded=before_anything)
    assert empty.entries == []
    assert empty.state.status == "not registered"


def test_a_corrected_result_time_moves_the_result_in_clinical_time_only_once_recorded(wired):
    history = drug_test_history(wired)
    before_fix = cut()
    # the lab reports it had the wrong date: the result was really for day 21 [v5]
    send(wired, "correct", history.client, 24, LAB, corrects_version=4, field="occurred_at", value=day(21).isoformat(),
         reason="lab entered the report date")

    assert replayed(wired, history.client, as_of=day(22)).state.results == {"sp-1": "negative"}
    assert replayed(wired, history.client, as_of=day(22), as_recorded=before_fix).state.pending_specimens == ["sp-1"]
    corrected = replayed(wired, history.client, as_of=day(22)).entries[-1]
    assert corrected.occurred_at == day(21)
    assert [(fix.version, fix.field, fix.previous_value) for fix in corrected.corrections] == [(5, "occurred_at", history.resulted.isoformat())]


# -- a correction made a week later --------------------------------------------------------------------


def test_a_correction_a_week_later_is_absent_as_recorded_before_it(wired):
    history = correction_history(wired)

    before = replayed(wired, history.client, as_recorded=history.before_correction)
    assert before.state.site == "north"
    assert versions(before) == [1, 2, 3, 4]
    admission = before.entries[1]
    assert (admission.type, admission.details["site"], admission.corrections) == ("AdmittedToLevel", "north", [])
    assert (before.state.sessions_attended, before.state.minutes_attended) == (2, 300)


def test_a_correction_a_week_later_shows_beside_the_entry_with_who_and_when(wired):
    history = correction_history(wired)

    now = replayed(wired, history.client)
    assert now.state.site == "south"
    assert versions(now) == [1, 2, 3, 4]  # the correction is beside its entry, not an entry of its own
    admission = now.entries[1]
    assert admission.details["site"] == "south"
    (fix,) = admission.corrections
    assert (fix.version, fix.field, fix.previous_value, fix.corrected_value) == (5, "site", "north", "south")
    assert fix.reason == "admitted at the south site"
    assert fix.recorded_by == {"id": SUPERVISOR.id, "role": SUPERVISOR.role}
    assert history.before_correction < fix.recorded_at < history.after_correction
    assert admission.recorded_at < history.before_correction  # the entry keeps its own recorded time

    # nothing is erased: the stored admission still says north
    stored = list(wired.app.events.get(jid(history.client)))
    assert stored[1].site == "north"
    assert len(stored) == 5


def test_clinical_and_recorded_time_together(wired):
    history = correction_history(wired)

    # the day of the admission, as the record stood before the correction: north, no sessions yet
    early = replayed(wired, history.client, as_of=day(1) + timedelta(hours=2), as_recorded=history.before_correction)
    assert (early.state.site, early.state.sessions_attended, versions(early)) == ("north", 0, [1, 2])

    # the same clinical moment, as known now: the correction applies to the admission
    early_now = replayed(wired, history.client, as_of=day(1) + timedelta(hours=2))
    assert (early_now.state.site, early_now.state.sessions_attended) == ("south", 0)

    # after the first session, as recorded just after the correction
    later = replayed(wired, history.client, as_of=day(2) + timedelta(hours=4), as_recorded=history.after_correction)
    assert (later.state.site, later.state.sessions_attended, later.state.minutes_attended) == ("south", 1, 180)
    assert [fix.version for fix in later.entries[1].corrections] == [5]

    # before the correction's own clinical time (day 8) it still applies: corrections fix the entry, not the day
    assert replayed(wired, history.client, as_of=day(5)).state.site == "south"


def test_replay_from_the_command_line(wired, database_url):
    history = correction_history(wired)
    wired.runner.catch_up()

    data = cli_json(database_url, "replay", history.client, "--as-of", (day(2) + timedelta(hours=4)).isoformat(),
                    "--as-recorded", history.before_correction.isoformat(), "--actor", "surveyor-2", "--role", "surveyor")
    assert data["client"] == history.client
    assert datetime.fromisoformat(data["as_recorded"]) == history.before_correction
    assert (data["state"]["site"], data["state"]["sessions_attended"]) == ("north", 1)
    assert [entry["version"] for entry in data["entries"]] == [1, 2, 3]
    assert all(entry["corrections"] == [] for entry in data["entries"])

    now = cli_json(database_url, "replay", history.client)
    assert now["state"]["site"] == "south"
    (fix,) = now["entries"][1]["corrections"]
    assert (fix["version"], fix["field"], fix["previous_value"], fix["corrected_value"]) == (5, "site", "north", "south")
    assert fix["recorded_by"] == {"id": "sup-9", "role": "supervisor"}
    assert history.before_correction < datetime.fromisoformat(fix["recorded_at"]) < history.after_correction

    table = cli(database_url, "replay", history.client)
    assert table.exit_code == 0, table.output
    assert f"{history.client} now: in_treatment, level 2.1 at south (evening)" in plain(table.stdout)


def test_replay_from_the_command_line_of_a_late_result(wired, database_url):
    history = drug_test_history(wired)
    wired.runner.catch_up()
    pending = cli_json(database_url, "replay", history.client, "--as-recorded", history.before_result.isoformat())
    assert (pending["state"]["pending_specimens"], pending["state"]["results"]) == (["sp-1"], {})
    # a date means the end of that day: the collection day, as known now
    on_collection_day = cli_json(database_url, "replay", history.client, "--as-of", day(20).date().isoformat())
    assert on_collection_day["state"]["pending_specimens"] == ["sp-1"]
    resulted = cli_json(database_url, "replay", history.client, "--as-of", day(23).date().isoformat())
    assert (resulted["state"]["pending_specimens"], resulted["state"]["results"]) == ([], {"sp-1": "negative"})


# -- the census of a past day, as it was known at a time ------------------------------------------------


def census_history(wired: Continuum) -> tuple[datetime, datetime]:
    """A: 2.1 north evening from day 1; B: 3.5 south from day 2; C: 2.1 north evening from day 3; E: registered
    only. Then, after R: C's discharge on day 10 is recorded late, and D's admission to 2.5 east day on day 4
    is recorded late. Returns (R, a time after everything)."""
    admitted(wired, "A", 1)
    admitted(wired, "B", 2, level="3.5", site="south", track=None)
    admitted(wired, "C", 3)
    registered(wired, "E")
    recorded = cut()
    send(wired, "discharge", "C", 10, reason="completed")
    admitted(wired, "D", 4, level="2.5", site="east", track="day")
    return recorded, cut()


def counts(lines: list) -> dict[tuple[str, str, str], int]:
    return {(line.level, line.site, line.track): line.clients for line in lines}


def test_census_of_a_past_day_as_known_at_a_time(wired):
    recorded, later = census_history(wired)
    wired.runner.catch_up()
    reads = wired.reads

    as_known_then = reads.census_as_recorded(day(12), recorded)
    assert counts(as_known_then.lines) == {("2.1", "north", "evening"): 2, ("3.5", "south", "residential"): 1}
    assert as_known_then.total == 3

    current = reads.census(day(12))
    assert counts(current.lines) == {("2.1", "north", "evening"): 1, ("2.5", "east", "day"): 1, ("3.5", "south", "residential"): 1}
    assert counts(current.lines) != counts(as_known_then.lines)
    # as known now, the replayed census agrees with the projection
    assert counts(reads.census_as_recorded(day(12), later).lines) == counts(current.lines)

    assert counts(reads.census_as_recorded(day(2) + timedelta(hours=6), recorded).lines) == {
        ("2.1", "north", "evening"): 1, ("3.5", "south", "residential"): 1,
    }
    assert counts(reads.census_as_recorded(day(12), recorded, site="south").lines) == {("3.5", "south", "residential"): 1}
    assert reads.census_as_recorded(day(12), day(-1)).lines == []


def test_census_as_recorded_from_the_command_line(wired, database_url):
    recorded, _ = census_history(wired)
    data = cli_json(database_url, "census", "--on", day(12).isoformat(), "--as-recorded", recorded.isoformat())
    assert data["total"] == 3
    assert {(c["level"], c["site"], c["track"]): c["clients"] for c in data["counts"]} == {
        ("2.1", "north", "evening"): 2, ("3.5", "south", "residential"): 1,
    }
    assert cli_json(database_url, "census", "--on", day(12).isoformat())["total"] == 3  # A, B, D now
    assert cli_json(database_url, "census", "--on", day(12).isoformat(), "--as-recorded", datetime.now(UTC).isoformat(),
                    "--level", "2.5")["total"] == 1


def test_census_as_recorded_now_agrees_with_the_census_for_alumni(wired):
    admitted(wired, "L-1", 1, site="east")
    send(wired, "discharge", "L-1", 5, reason="completed")
    send(wired, "enrol_alumni", "L-1", 6, program="alumni")
    wired.runner.catch_up()
    reads = wired.reads
    now = datetime.now(UTC)
    assert counts(reads.census_as_recorded(day(7), now).lines) == counts(reads.census(day(7)).lines)
