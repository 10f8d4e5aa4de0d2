"""The HTTP API: commands in, projections and histories out, only to those allowed."""

from services.api.app import create_app, openapi_document

__all__ = ["create_app", "openapi_document"]
