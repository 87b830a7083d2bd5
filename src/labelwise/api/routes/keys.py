"""`/v1/keys`: key administration (the `admin` scope). Every change is written to the audit log with the acting
key's prefix and the request id."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from labelwise.api.access import requires
from labelwise.api.deps import IdempotencyDep, KeyServiceDep, PrincipalDep, RequestIdDep
from labelwise.api.routes.jobs import IDEMPOTENCY_RESPONSES, IdempotencyKey
from labelwise.api.schemas.errors import error_responses
from labelwise.api.schemas.keys import KeyCreate, KeyCreated, KeyList, KeyPublic, KeyUpdate
from labelwise.services.idempotency import Replay, body_hash
from labelwise.services.keys import Scope

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=error_responses(400, 401, 403, 429))

PrefixPath = Path(max_length=64, description="The key's prefix (the 8 characters after `lw_`).")
REPLAYED_HEADER = "Idempotent-Replayed"

# Plain `def` handlers: FastAPI runs them in its thread pool, where the key service's database calls belong.
# `create_key` is the exception: it awaits the idempotency service and sends the key service to a thread itself.


@router.post("", status_code=201, response_model=KeyCreated, responses=IDEMPOTENCY_RESPONSES)
@requires(Scope.ADMIN)
async def create_key(
    body: KeyCreate,
    keys: KeyServiceDep,
    idempotency: IdempotencyDep,
    principal: PrincipalDep,
    request_id: RequestIdDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Create a key. The response holds the full secret: shown this once, never stored.

    With an `Idempotency-Key` header the key is created once however often the request is sent: a repeat with the
    same body, by the same calling key within 24 hours, gets the first answer's status (201) and body again, except
    for the secret, which is stored nowhere and so cannot be repeated: `key` is null, `replayed` is true, the
    `Idempotent-Replayed: true` header is set, and `prefix` names the key the first request created (revoke it
    if its secret was lost). The same `Idempotency-Key` with another body is refused (422); a repeat that arrives
    while the first is still running gets 409.
    """

    async def create() -> tuple[KeyCreated, Replay]:
        secret, info = await asyncio.to_thread(
            keys.create, body.name, body.scopes, settings=body.changes(), actor=principal.prefix, request_id=request_id
        )
        public = KeyPublic.of(info).model_dump()
        withheld = KeyCreated(**public, key=None, replayed=True)
        return KeyCreated(**public, key=secret), Replay(201, withheld.model_dump(mode="json"))

    if idempotency_key is None:
        return (await create())[0]
    answer = await idempotency.once(principal.prefix, idempotency_key, body_hash(body.fingerprint()), create)
    if isinstance(answer, Replay):
        return JSONResponse(answer.body, status_code=answer.status, headers={REPLAYED_HEADER: "true"})
    return answer


@router.get("")
@requires(Scope.ADMIN)
def list_keys(keys: KeyServiceDep) -> KeyList:
    """Every key, revoked ones included (prefixes only, never secrets)."""
    return KeyList(data=[KeyPublic.of(info) for info in keys.list()])


@router.get("/{prefix}", responses=error_responses(404))
@requires(Scope.ADMIN)
def get_key(keys: KeyServiceDep, prefix: str = PrefixPath) -> KeyPublic:
    """One key by its prefix."""
    return KeyPublic.of(keys.get(prefix))


@router.patch("/{prefix}", responses=error_responses(404))
@requires(Scope.ADMIN)
def update_key(
    body: KeyUpdate, keys: KeyServiceDep, principal: PrincipalDep, request_id: RequestIdDep, prefix: str = PrefixPath
) -> KeyPublic:
    """Change a key's settings; only the fields sent change. Takes effect within the key cache's few seconds."""
    info = keys.update(prefix, body.changes(), actor=principal.prefix, request_id=request_id)
    return KeyPublic.of(info)


@router.delete("/{prefix}", responses=error_responses(404))
@requires(Scope.ADMIN)
def revoke_key(
    keys: KeyServiceDep, principal: PrincipalDep, request_id: RequestIdDep, prefix: str = PrefixPath
) -> KeyPublic:
    """Revoke a key for good (it is kept, marked revoked, for the audit log and usage)."""
    return KeyPublic.of(keys.revoke(prefix, actor=principal.prefix, request_id=request_id))
