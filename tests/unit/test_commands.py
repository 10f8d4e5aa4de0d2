"""The pydantic command models at the boundary: what a command line must look like."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from domain.journey import ClientJourney, Status
from domain.levels import Level, Medication, ReferralSource, SessionKind, TestResult, Track
from domain.values import Actor, Context
from services.commands import (
    COMMANDS,
    Admit,
    Assess,
    Command,
    Correct,
    Register,
    commands_json_schema,
    parse_command,
)

WHEN = "2024-03-01T10:00:00+00:00"

VALID: dict[str, dict[str, Any]] = {
    "register": {"site": "north", "birth_year": 1990, "sex": "female"},
    "refer": {"source": "court", "referred_level": "3.5"},
    "assess": {"ratings": [0, 1, 2, 3, 4, 2], "recommended_level": "2.1", "clinician": "dr-k"},
    "start_detox": {"level": "3.7-WM", "site": "north", "substances": ["opioids"]},
    "complete_detox": {"completed": False},
    "admit": {"level": "2.1", "site": "north", "track": "evening", "planned_hours_per_week": 9, "medication": "buprenorphine"},
    "plan": {"goals": ["abstinence", "employment"], "review_on": "2024-04-01"},
    "attend_session": {"session_id": "s-1", "minutes": 90, "kind": "individual", "modality": "mi", "telehealth": True},
    "miss_session": {"session_id": "s-2", "excused": True},
    "collect_drug_test": {"specimen_id": "sp-1", "specimen": "oral_fluid", "observed": True},
    "result_drug_test": {"specimen_id": "sp-1", "result": "positive", "substances": {"fentanyl": "positive"}},
    "step_up": {"to_level": "2.5", "reason": "use", "track": "day"},
    "step_down": {"to_level": "1", "reason": "progress", "planned_hours_per_week": 3},
    "discharge": {"reason": "left_against_advice", "referral_onward": "outpatient clinic"},
    "enrol_alumni": {},
    "attend_alumni_activity": {"activity": "monthly dinner"},
    "change_track": {"track": "evening", "reason": "started a day job"},
    "change_medication": {"medication": "buprenorphine", "reason": "induction"},
    "correct": {"corrects_version": 3, "field": "minutes", "value": 90, "reason": "typo"},
    "void": {"versions": [5, 4], "reason": "entered for the wrong client"},
    "grant_consent": {"consent_id": "CF-1", "recipient": "Main Street Clinic", "purpose": "treatment", "scope": ["all"]},
    "revoke_consent": {"consent_id": "CF-1"},
}


def line(name: str, /, **fields: Any) -> dict[str, Any]:
    """A valid command line for `name`, with `fields` replacing or adding to it."""
    return {"command": name, "client": "C-1", "occurred_at": WHEN, **VALID[name], **fields}


def first_error(data: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        parse_command(data)
    return caught.value.errors()[0]


def test_every_command_has_a_valid_example():
    assert sorted(VALID) == sorted(model.model_fields["command"].default for model in COMMANDS)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_line_parses(name):
    command = parse_command(line(name))
    assert isinstance(command, Command)
    assert command.command == name
    assert (command.client, command.occurred_at) == ("C-1", datetime(2024, 3, 1, 10, 0, tzinfo=UTC))
    assert command.id is None


def test_parsed_fields_carry_the_domain_vocabulary():
    admit = parse_command(line("admit"))
    assert isinstance(admit, Admit)
    assert (admit.level, admit.track, admit.medication, admit.planned_hours_per_week) == (
        Level.IOP,
        Track.EVENING,
        Medication.BUPRENORPHINE,
        9.0,
    )
    assessed = parse_command(line("assess"))
    assert isinstance(assessed, Assess)
    assert (assessed.ratings, assessed.recommended_level) == ([0, 1, 2, 3, 4, 2], Level.IOP)
    assert parse_command(line("refer")).source is ReferralSource.COURT
    assert parse_command(line("attend_session")).kind is SessionKind.INDIVIDUAL
    assert parse_command(line("result_drug_test")).result is TestResult.POSITIVE
    assert parse_command(line("miss_session")).minutes == 180  # default scheduled length
    assert parse_command(line("enrol_alumni")).program == "alumni"
    corrected = parse_command(line("correct"))
    assert isinstance(corrected, Correct)
    assert corrected.value == 90.0
    assert Register.creates
    assert not Admit.creates


def test_parsed_commands_drive_the_journey():
    by = Actor("importer", "system")
    now = datetime(2024, 3, 2, tzinfo=UTC)
    register = parse_command(line("register"))
    assert isinstance(register, Register)
    journey = register.create(Context(by, now, register.command_id()))
    admit = parse_command(line("admit", occurred_at="2024-03-01T11:00:00Z"))
    admit.apply(journey, Context(by, now, admit.command_id()))
    assert (journey.client_ref, journey.status, journey.level, journey.track) == (
        "C-1",
        Status.IN_TREATMENT,
        Level.IOP,
        Track.EVENING,
    )
    assert journey.id == ClientJourney.create_id("C-1")
    assert [type(e).__name__ for e in journey.collect_events()] == ["ClientRegistered", "AdmittedToLevel"]


def test_unknown_command_is_refused():
    error = first_error(line("refer", command="teleport"))
    assert error["type"] == "union_tag_invalid"
    assert error["loc"] == ()  # the discriminator is named in the context, not the location
    assert error["ctx"]["discriminator"] == "'command'"
    assert error["ctx"]["tag"] == "teleport"


def test_missing_command_name_is_refused():
    data = line("refer")
    del data["command"]
    error = first_error(data)
    assert (error["type"], error["ctx"]["discriminator"]) == ("union_tag_not_found", "'command'")


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ("admit", "level"),
        ("admit", "site"),
        ("refer", "source"),
        ("refer", "client"),
        ("refer", "occurred_at"),
        ("correct", "value"),
        ("attend_session", "session_id"),
    ],
)
def test_missing_field_is_named(command, field):
    data = line(command)
    del data[field]
    error = first_error(data)
    assert (error["loc"], error["type"]) == ((command, field), "missing")


def test_naive_datetime_is_refused():
    error = first_error(line("attend_session", occurred_at="2024-03-01T10:00:00"))
    assert (error["loc"], error["type"]) == (("attend_session", "occurred_at"), "timezone_aware")


@pytest.mark.parametrize(
    ("command", "field", "code"),
    [
        ("admit", "level", "2.2"),
        ("admit", "level", "ICU"),
        ("step_up", "to_level", "5"),
        ("assess", "recommended_level", ""),
    ],
)
def test_bad_level_code_is_refused(command, field, code):
    error = first_error(line(command, **{field: code}))
    assert (error["loc"], error["type"]) == ((command, field), "enum")


def test_level_may_be_given_by_name():
    assert parse_command(line("admit", level="IOP")).level is Level.IOP
    assert parse_command(line("step_down", to_level="outpatient")).to_level is Level.OUTPATIENT


@pytest.mark.parametrize(
    ("ratings", "loc", "kind"),
    [
        ([0, 1, 2, 3, 4, 5], ("assess", "ratings", 5), "less_than_equal"),
        ([-1, 1, 2, 3, 4, 4], ("assess", "ratings", 0), "greater_than_equal"),
        ([0, 1, 2, 3, 4], ("assess", "ratings"), "too_short"),
        ([0, 1, 2, 3, 4, 4, 4], ("assess", "ratings"), "too_long"),
    ],
)
def test_rating_out_of_range_is_refused(ratings, loc, kind):
    error = first_error(line("assess", ratings=ratings))
    assert (error["loc"], error["type"]) == (loc, kind)


def test_extra_field_is_refused():
    error = first_error(line("refer", colour="red"))
    assert (error["loc"], error["type"]) == (("refer", "colour"), "extra_forbidden")


@pytest.mark.parametrize(
    ("command", "fields", "loc"),
    [
        ("register", {"client": "C 1"}, ("register", "client")),
        ("register", {"client": ""}, ("register", "client")),
        ("register", {"birth_year": 1850}, ("register", "birth_year")),
        ("register", {"sex": "f"}, ("register", "sex")),
        ("admit", {"planned_hours_per_week": 200}, ("admit", "planned_hours_per_week")),
        ("attend_session", {"minutes": 0}, ("attend_session", "minutes")),
        ("plan", {"goals": []}, ("plan", "goals")),
        ("correct", {"corrects_version": 0}, ("correct", "corrects_version")),
    ],
)
def test_out_of_range_values_are_refused(command, fields, loc):
    assert first_error(line(command, **fields))["loc"] == loc


def test_per_substance_result_must_be_positive_or_negative():
    error = first_error(line("result_drug_test", substances={"fentanyl": "maybe"}))
    assert error["loc"] == ("result_drug_test", "substances", "fentanyl")


def test_command_id_is_stable_for_the_same_content():
    first = parse_command(line("attend_session"))
    reordered = parse_command(dict(reversed(list(line("attend_session", occurred_at="2024-03-01T10:00:00Z").items()))))
    assert first.command_id() == reordered.command_id() == parse_command(line("attend_session")).command_id()
    assert first.command_id().startswith("sha256:")
    assert len(first.command_id()) == len("sha256:") + 32


def test_command_id_differs_for_different_content():
    base = parse_command(line("attend_session")).command_id()
    assert parse_command(line("attend_session", minutes=91)).command_id() != base
    assert parse_command(line("attend_session", client="C-2")).command_id() != base
    assert parse_command(line("attend_session", occurred_at="2024-03-01T10:01:00+00:00")).command_id() != base
    assert (
        parse_command(line("miss_session", session_id="s-1")).command_id()
        != parse_command(
            line("attend_session", session_id="s-1", minutes=180, kind="group", modality=None, telehealth=False),
        ).command_id()
    )


def test_explicit_id_wins():
    assert parse_command(line("attend_session", id="import-42")).command_id() == "import-42"
    assert parse_command(line("attend_session", id="import-42", minutes=30)).command_id() == "import-42"
    assert first_error(line("attend_session", id=""))["loc"] == ("attend_session", "id")


def test_json_schema_lists_every_command():
    schema = commands_json_schema()
    mapping = schema["discriminator"]["mapping"]
    assert schema["discriminator"]["propertyName"] == "command"
    assert sorted(mapping) == sorted(VALID)
    assert {ref.rsplit("/", 1)[-1] for ref in mapping.values()} == {model.__name__ for model in COMMANDS}
    assert all(ref.rsplit("/", 1)[-1] in schema["$defs"] for ref in mapping.values())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
