"""assistance's HTTP surface, one module per resource."""
from fastapi import APIRouter

from services.assistance.api import measures, plans

router = APIRouter(prefix="/v1", tags=["assistance"])
for module in (plans, measures):
    router.include_router(module.router)
