"""Bearer JWTs: who calls (system, staff, household), in which role, inside which region prefix."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal
from uuid import UUID

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from contracts.envelope import Actor
from runtime.eventstore import EventMetadata
from runtime.ids import new_id
from runtime.telemetry import current_traceparent
from runtime.problems import Problem, field_error
from runtime.settings import Settings

PrincipalKind = Literal["system", "staff", "household"]
# Staff of these roles act in every region (a token without a region); every other member of staff
# acts inside the region prefix their token names.
NATIONAL_ROLES = frozenset({"national_officer"})


class Principal(BaseModel):
    sub: str
    kind: PrincipalKind
    role: str
    region: str = ""
    department: str | None = None

    def covers(self, region_code: str | None) -> bool:
        """Staff act only inside their region prefix."""
        return region_code is not None and region_code.startswith(self.region)

    def as_actor(self) -> Actor:
        return Actor(kind=self.kind, id=self.sub, role=self.role, region=self.region or None)


def issue_token(
    settings: Settings,
    *,
    sub: str,
    role: str,
    region: str = "",
    kind: PrincipalKind = "staff",
    department: str | None = None,
    ttl: timedelta = timedelta(days=30),
    now: datetime | None = None,
) -> str:
    now = now or datetime.now(timezone.utc)
    claims = {
        "iss": settings.jwt_issuer,
        "sub": sub,
        "kind": kind,
        "role": role,
        "region": region,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    if department:
        claims["department"] = department
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256", headers={"kid": settings.jwt_key_id})


def decode_token(settings: Settings, token: str) -> Principal:
    try:
        claims = jwt.decode(token, _verifying_secret(settings, token), algorithms=["HS256"], issuer=settings.jwt_issuer)
        principal = Principal.model_validate(claims)
    except (jwt.PyJWTError, ValidationError) as exc:
        raise Problem(401, "Unauthorized", f"invalid bearer token: {exc}", code="token_invalid") from exc
    if principal.kind == "staff" and not principal.region and principal.role not in NATIONAL_ROLES:
        raise Problem(403, "Forbidden", f"a {principal.role}'s token must name the region its holder acts in; "
                      f"only {', '.join(sorted(NATIONAL_ROLES))} acts nationwide", code="region_missing_in_token",
                      errors=[{"field": "region", "message": "empty in a staff token"}])
    return principal


def _verifying_secret(settings: Settings, token: str) -> str:
    """The secret of the key id the token names: the current one, or an old one kept for rotation
    (a token without a key id predates ids and is checked against the current secret)."""
    key_id = jwt.get_unverified_header(token).get("kid")
    if key_id is None or key_id == settings.jwt_key_id:
        return settings.jwt_secret
    if key_id in settings.jwt_old_secrets:
        return settings.jwt_old_secrets[key_id]
    raise jwt.InvalidKeyError(f"signed with key id {key_id!r}, which this service does not hold")


# Declares the bearer scheme in each service's API description, on exactly the operations that take a
# token (the Authorize button of /docs). auto_error=False: it never answers by itself, so a missing or
# bad token is still current_principal's 401 problem document; bearer_token stays the one parser.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", bearerFormat="JWT",
                    description="a token from `fangpin token --role ROLE --region PREFIX` (staff), "
                                "`--kind system` (department systems, operators), or a household's QR link")


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def current_principal(request: Request,
                            _declared: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise Problem(401, "Unauthorized", "send Authorization: Bearer <token> (fangpin token --role ... prints one)",
                      code="token_missing")
    return decode_token(request.app.state.context.settings, token)


def require(*roles: str, kinds: tuple[PrincipalKind, ...] = ("staff",)):
    """A dependency that admits only the given principal kinds and, if named, roles."""

    async def check(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.kind not in kinds or (roles and principal.role not in roles):
            wanted = ", ".join(roles) if roles else " or ".join(kinds)
            raise Problem(403, "Forbidden", f"this needs {wanted}; the token is {principal.kind}/{principal.role}",
                          code="role_not_allowed")
        return principal

    return check


# Any member of staff, whatever their role (a route's parameter `principal: Staff`).
Staff = Annotated[Principal, Depends(require(kinds=("staff",)))]
# Any member of staff or system, whatever their role.
StaffOrSystem = Annotated[Principal, Depends(require(kinds=("staff", "system")))]


_DEPARTMENT_ROLES = require("department_system", "department_liaison", kinds=("system", "staff"))


async def department_actor(principal: Principal = Depends(_DEPARTMENT_ROLES)) -> Principal:
    """A department system or liaison, acting for exactly the one department its token names: a
    token without one could otherwise act for any department."""
    if not principal.department:
        raise Problem(403, "Forbidden", "this token names no department; a department's token carries its "
                      "department (fangpin token --kind system --role department_system --department civil_affairs)",
                      code="department_missing_in_token", errors=[{"field": "department", "message": "the token has no department claim"}])
    return principal


# A department's system or liaison, for its own department (department warnings, delivery confirmations).
Department = Annotated[Principal, Depends(department_actor)]


def require_region(principal: Principal, region_code: str | None) -> None:
    if not principal.covers(region_code):
        raise Problem(
            403, "Forbidden", f"region {region_code} is outside your region {principal.region or '(none)'}",
            code="region_outside_scope")


def region_scope(principal: Principal, region: str | None) -> str:
    """The region prefix a list is filtered by: the caller's own, or a narrower one inside it."""
    if not region:
        return principal.region
    if not region.isdigit() or len(region) > 12:
        raise field_error("region", "a prefix of a 12-digit region code", code="region_prefix_invalid")
    if not region.startswith(principal.region):
        raise Problem(403, "Forbidden", f"region {region} is outside your region {principal.region or '(none)'}",
                      code="region_outside_scope")
    return region


def command_metadata(principal: Principal, request: Request) -> EventMetadata:
    """Event metadata of one HTTP command: who, which correlation, which trace."""
    raw = request.headers.get("x-correlation-id")
    try:
        correlation = UUID(raw) if raw else new_id()
    except ValueError:
        correlation = new_id()
    return EventMetadata(actor=principal.as_actor(), correlation_id=correlation, traceparent=current_traceparent())
