"""How a journey records an event: the library's `@event`, with a lean live call.

Called on a journey, the library's decorated method goes the long way to a pending event: it binds
the call to the body's signature, filters the keywords for the event class, builds the event, checks
its id and version in `mutate`, then filters the event's attributes for the body and calls it through
`apply`: about a tenth of ingest's CPU per event, for nothing the journey needs. `@recorded(EventClass)`
is the same decorator to the library, so the aggregate's event class, its topic and replay are the
library's own: a stored event, upcast or not, is folded by its `apply` through the same body. Only the
live call is short: it builds the same event from the same keywords (the body names exactly the
event's fields, checked once), runs the body once, and moves the version and modified time on as
`mutate` does. The recorded time is the library's `create_timestamp()`, read at the same point.

The live call takes keywords only (every event method is called that way). tests/unit/test_recording.py
holds the events of both ways equal, attribute by attribute and in their stored bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from types import MethodType
from typing import Any, TypeVar, cast

from eventsourcing.domain import (
    BaseAggregate,
    CanMutateAggregate,
    CommandMethodDecorator,
    DecoratedFuncCaller,
    decorated_func_callers,
    decorated_funcs,
)

Body = TypeVar("Body", bound=Callable[..., None])

ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp"})
"""The fields the aggregate gives every event; the body is given all the others."""


def recorded(event_class: type[CanMutateAggregate[Any]]) -> Callable[[Body], Body]:
    """`@event(event_class)` on an aggregate method whose body only changes state, with the lean live call."""

    def decorate(body: Body) -> Body:
        return cast("Body", RecordedMethod(event_class, body))

    return decorate


class RecordedMethod(CommandMethodDecorator):
    """To the library, the decorator `@event(event_class)` makes; read on an aggregate, the lean call."""

    def __init__(self, event_class: type[CanMutateAggregate[Any]], body: Callable[..., None]) -> None:
        super().__init__(event_spec=event_class, decorated_obj=body)
        self.event_class: Callable[..., CanMutateAggregate[Any]] | None = None  # the aggregate's own, found on first use
        self.record = self._lean_call(body)

    def __get__(self, instance: BaseAggregate[Any] | None, owner: type[BaseAggregate[Any]]) -> Any:  # noqa: ANN401 - as the library's
        if instance is None:
            return super().__get__(instance, owner)
        return MethodType(self.record, instance)

    def _lean_call(self, body: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(body)
        def record(aggregate: BaseAggregate[Any], /, **fields: Any) -> None:  # noqa: ANN401 - an event's fields
            event_class = self.event_class or self._event_class(aggregate)
            event = event_class(
                originator_id=aggregate.id,
                originator_version=aggregate.version + 1,
                timestamp=event_class.create_timestamp(),  # type: ignore[attr-defined]
                **fields,
            )
            body(aggregate, **fields)  # what the event's `apply` runs at replay; before the version moves on, as there
            aggregate.version = event.originator_version
            aggregate.modified_on = event.timestamp
            aggregate.pending_events.append(event)

        return record

    def _event_class(self, aggregate: BaseAggregate[Any]) -> Callable[..., CanMutateAggregate[Any]]:
        """The class the library triggers for this decorator, once it is known that building it here is what the
        library does: the same body at replay, no `apply` or `mutate` of its own, no explicit topic to check, and
        the body named by exactly the event's fields, without defaults."""
        event_class = cast("type[CanMutateAggregate[Any]]", decorated_func_callers[self])
        body = self.decorated_func
        name = f"{event_class.__qualname__} (recorded by {body.__qualname__})"
        if decorated_funcs.get(event_class) is not body:
            raise TypeError(f"{name}: replay would not run this body")
        for klass in event_class.__mro__:
            own = {"apply", "mutate"} & vars(klass).keys()
            if klass is not CanMutateAggregate and own - ({"apply"} if klass is DecoratedFuncCaller else set()):
                raise TypeError(f"{name}: {klass.__qualname__} has its own apply or mutate; use the library's @event")
        if getattr(type(aggregate), "TOPIC", None):
            raise TypeError(f"{name}: explicit topics are checked on each event by the library; use its @event")
        fields = {field.name for field in dataclasses.fields(event_class)} - ENVELOPE  # type: ignore[arg-type]
        parameters = list(inspect.signature(body).parameters.values())[1:]
        named = {parameter.name for parameter in parameters if parameter.default is parameter.empty}
        if named != fields or len(parameters) != len(named):
            raise TypeError(f"{name}: the body must take exactly the event's fields, without defaults: {sorted(fields)}")
        self.event_class = event_class
        return event_class
