"""exit_review's HTTP surface, one module per resource."""
from fastapi import APIRouter

from services.exit_review.api import exits, statistics

router = APIRouter(prefix="/v1", tags=["exit_review"])
for module in (exits, statistics):
    router.include_router(module.router)
