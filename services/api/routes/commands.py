"""One endpoint per command of the core, each taking the core's own command model as its body.

`Idempotency-Key` becomes the command id, so a repeat (even a concurrent one) is recognised by
the journey itself, records nothing, and is answered with the events the first request recorded.
"""

from collections.abc import Callable
from typing import Annotated
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Body, Header, HTTPException, Response

from domain.events import event_id, event_name
from domain.journey import ClientJourney
from domain.values import Actor
from infra.chain import CHAIN_TABLE
from services.api.deps import Api, ApiDep, Clinician
from services.api.freshness import mark
from services.api.problems import InvalidParameter, responses
from services.api.schemas import CommandAccepted, RecordedEventPublic
from services.api.tokens import Principal
from services.commands import COMMANDS, Command
from services.journeys import RecordedEvent

router = APIRouter(prefix="/commands", tags=["commands"])
log = structlog.get_logger("continuum.api.commands")

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=128,
    description="Names this command for the client's journey: a repeat with the same key records nothing and gets the first result",
)]


def command_name(model: type[Command]) -> str:
    return str(model.model_fields["command"].default)


def execute(api: Api, principal: Principal, command: Command, key: str | None) -> CommandAccepted:
    if key is not None:
        if command.id is not None and command.id != key:
            raise InvalidParameter("header", "Idempotency-Key", "differs from the body's id: send one or make them equal")
        command = command.model_copy(update={"id": key})
    name = command_name(type(command))
    _check_site(api, principal, command)
    outcome = api.wired.service.execute(command, Actor(principal.name, principal.role.value))
    if outcome.error is not None:
        api.metrics.commands.labels(name, "refused").inc()
        raise outcome.error
    events = outcome.events or _first_result(api, outcome.journey_id, outcome.command_id)
    if not outcome.duplicate and api.follower is not None:
        api.follower.nudge()
    api.metrics.commands.labels(name, "replayed" if outcome.duplicate else "recorded").inc()
    log.info("command", command=name, journey_id=str(outcome.journey_id), events=len(events), replayed=outcome.duplicate)
    return CommandAccepted(
        command=name, command_id=outcome.command_id, journey_id=outcome.journey_id,
        events=[RecordedEventPublic(id=e.id, type=e.type, version=e.version, position=e.position) for e in events],
        position=max((e.position for e in events), default=0), replayed=outcome.duplicate,
    )


def _check_site(api: Api, principal: Principal, command: Command) -> None:
    """A clinician registers clients at its own site and acts on the clients registered there."""
    if command.creates:
        site = getattr(command, "site", None)
        if site != principal.site:
            raise HTTPException(403, f"a clinician of site {principal.site} registers clients at {principal.site} only")
        return
    try:
        journey: ClientJourney = api.wired.app.repository.get(ClientJourney.create_id(command.client))
    except AggregateNotFoundError:
        return  # the service answers: no such client
    if journey.home_site != principal.site:
        raise HTTPException(403, f"client {command.client} is not registered at site {principal.site}")


def _first_result(api: Api, journey_id: UUID, command_id: str) -> list[RecordedEvent]:
    """The events an earlier request with this command id recorded, read from the store itself."""
    found = [e for e in api.wired.app.events.get(journey_id) if getattr(e, "command_id", None) == command_id]
    if not found:
        return []
    with api.wired.views.transaction() as cursor:
        cursor.execute(
            f"SELECT originator_version, notification_id FROM {CHAIN_TABLE} WHERE originator_id = ?"  # noqa: S608
            " AND originator_version BETWEEN ? AND ?",
            (str(journey_id), found[0].originator_version, found[-1].originator_version),
        )
        positions = {int(version): int(position) for version, position in cursor.fetchall()}
    return [
        RecordedEvent(event_id(journey_id, e.originator_version), event_name(e), e.originator_version,
                      positions.get(e.originator_version, 0))
        for e in found
    ]


def _endpoint(model: type[Command]) -> Callable[..., CommandAccepted]:
    def endpoint(
        command: Annotated[model, Body()],  # type: ignore[valid-type]
        principal: Clinician,
        api: ApiDep,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> CommandAccepted:
        accepted = execute(api, principal, command, idempotency_key)
        if accepted.replayed:
            response.status_code = 200
        mark(response, accepted.position)
        return accepted

    return endpoint


for _model in COMMANDS:
    _name = command_name(_model)
    router.add_api_route(
        f"/{_name}", _endpoint(_model), methods=["POST"], status_code=201, response_model=CommandAccepted,
        name=_name, operation_id=f"command_{_name}", summary=f"{_name.replace('_', ' ').capitalize()} (clinician)",
        description=(
            f"Record `{_name}` for a client of the clinician's site. The body is the `{_model.__name__}` command of"
            " `continuum schema commands` (the `command` field may be left out). 201 with the new events' ids and"
            " the store position; 200 with the first result for a repeated command id."
        ),
        responses={200: {"model": CommandAccepted, "description": "A repeat: the first result, nothing recorded"},
                   **responses(401, 403, 404, 409, 422, 503)},
    )
