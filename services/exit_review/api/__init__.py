"""exit_review's HTTP surface, one module per resource."""
from fastapi import APIRouter

from services.exit_review.api import exits

router = APIRouter(prefix="/v1", tags=["exit_review"])
router.include_router(exits.router)
