"""`/v1/keys`: key administration (the `admin` scope). Every change is written to the audit log with the acting
key's prefix and the request id."""

from __future__ import annotations

from fastapi import APIRouter, Path

from labelwise.api.deps import KeyServiceDep, PrincipalDep, RequestIdDep
from labelwise.api.schemas.errors import error_responses
from labelwise.api.schemas.keys import KeyCreate, KeyCreated, KeyList, KeyPublic, KeyUpdate

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=error_responses(400, 401, 403, 429))

PrefixPath = Path(max_length=64, description="The key's prefix (the 8 characters after `lw_`).")

# Plain `def` handlers: FastAPI runs them in its thread pool, where the key service's database calls belong.


@router.post("", status_code=201)
def create_key(body: KeyCreate, keys: KeyServiceDep, principal: PrincipalDep, request_id: RequestIdDep) -> KeyCreated:
    """Create a key. The response holds the full secret: shown this once, never stored."""
    secret, info = keys.create(
        body.name, body.scopes, settings=body.changes(), actor=principal.prefix, request_id=request_id
    )
    return KeyCreated(**KeyPublic.of(info).model_dump(), key=secret)


@router.get("")
def list_keys(keys: KeyServiceDep) -> KeyList:
    """Every key, revoked ones included (prefixes only, never secrets)."""
    return KeyList(data=[KeyPublic.of(info) for info in keys.list()])


@router.get("/{prefix}", responses=error_responses(404))
def get_key(keys: KeyServiceDep, prefix: str = PrefixPath) -> KeyPublic:
    """One key by its prefix."""
    return KeyPublic.of(keys.get(prefix))


@router.patch("/{prefix}", responses=error_responses(404))
def update_key(
    body: KeyUpdate, keys: KeyServiceDep, principal: PrincipalDep, request_id: RequestIdDep, prefix: str = PrefixPath
) -> KeyPublic:
    """Change a key's settings; only the fields sent change. Takes effect within the key cache's few seconds."""
    info = keys.update(prefix, body.changes(), actor=principal.prefix, request_id=request_id)
    return KeyPublic.of(info)


@router.delete("/{prefix}", responses=error_responses(404))
def revoke_key(
    keys: KeyServiceDep, principal: PrincipalDep, request_id: RequestIdDep, prefix: str = PrefixPath
) -> KeyPublic:
    """Revoke a key for good (it is kept, marked revoked, for the audit log and usage)."""
    return KeyPublic.of(keys.revoke(prefix, actor=principal.prefix, request_id=request_id))
