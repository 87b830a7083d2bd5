"""Request and response bodies of the HTTP API (pydantic); they are also the OpenAPI document."""
