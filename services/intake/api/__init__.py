"""intake's HTTP surface, one module per resource."""
from fastapi import APIRouter

from services.intake.api import clues, declarations, households, keys, visits, warnings

router = APIRouter(prefix="/v1", tags=["intake"])
for module in (households, warnings, declarations, visits, clues, keys):
    router.include_router(module.router)
