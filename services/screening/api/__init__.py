"""screening's HTTP surface, one module per resource."""
from fastapi import APIRouter

from services.screening.api import cases, quality_issues, subjects

router = APIRouter(prefix="/v1", tags=["screening"])
for module in (cases, subjects, quality_issues):
    router.include_router(module.router)
