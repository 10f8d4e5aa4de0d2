"""One endpoint per command of the core, each taking the core's own command model as its body.

`Idempotency-Key` becomes the command id, so a repeat (even a concurrent one) is recognised by
the journey itself, records nothing, and is answered with the events the first request recorded.
"""

from collections.abc import Callable
from typing import Annotated

import structlog
from fastapi import APIRouter, Body, Header, Response

from domain.values import Actor
from services.api.deps import Api, ApiDep, Clinician
from services.api.freshness import mark
from services.api.problems import InvalidParameter, responses
from services.api.schemas import CommandAccepted, RecordedEventPublic
from services.commands import COMMANDS, Command
from services.tokens import Principal

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
    outcome = api.wired.service.execute(command, Actor(principal.name, principal.role.value), site=principal.site)
    if outcome.error is not None:
        api.metrics.commands.labels(name, "refused").inc()
        raise outcome.error
    events = outcome.events
    if not outcome.duplicate and api.follower is not None:
        api.follower.nudge()
    api.metrics.commands.labels(name, "replayed" if outcome.duplicate else "recorded").inc()
    log.info("command", command=name, journey_id=str(outcome.journey_id), events=len(events), replayed=outcome.duplicate)
    return CommandAccepted(
        command=name, command_id=outcome.command_id, journey_id=outcome.journey_id,
        events=[RecordedEventPublic(id=e.id, type=e.type, version=e.version, position=e.position) for e in events],
        position=max((e.position for e in events), default=0), replayed=outcome.duplicate,
    )


def _endpoint(model: type[Command]) -> Callable[..., CommandAccepted]:
    def endpoint(
        command: Annotated[model, Body()],  # type: ignore[valid-type]  # each command's own class, a variable to mypy
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
                   **responses(400, 401, 403, 404, 409, 422, 503)},
    )
