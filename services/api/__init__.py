"""The HTTP API: commands in, projections and histories out, only to those allowed.

`create_app` and `openapi_document` load FastAPI when first used, so that a module of this
package (the tokens the CLI manages) can be imported without the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.api.app import create_app, openapi_document

__all__ = ["create_app", "openapi_document"]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - the app module's functions
    if name in __all__:
        from services.api import app

        return getattr(app, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
