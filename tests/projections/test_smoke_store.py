from domain.values import Actor
from services.commands import parse_command


def test_register_and_project_on_both_databases(wired):
    outcome = wired.service.execute(
        parse_command({"command": "register", "client": "C-9", "occurred_at": "2026-01-01T10:00:00Z", "site": "north"}),
        Actor("t", "clinician"),
    )
    assert outcome.ok
    wired.runner.catch_up()
    assert [s.lag for s in wired.runner.status()] == [0] * len(wired.runner.status())
