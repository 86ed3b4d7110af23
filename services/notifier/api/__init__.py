"""notifier's HTTP surface, one module per resource: the staff directory and each member of staff's inbox."""
from fastapi import APIRouter

from services.notifier.api import inbox, staff

router = APIRouter(prefix="/v1", tags=["notifier"])
for module in (staff, inbox):
    router.include_router(module.router)
