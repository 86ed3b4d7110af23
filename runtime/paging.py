"""Cursor paging shared by every list endpoint (`?cursor=&limit=`)."""
from __future__ import annotations

import base64
from typing import Annotated, Any, Callable, Generic, Sequence, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from runtime.problems import field_error

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageRequest(BaseModel):
    after: str | None
    limit: int


async def page_request(
    cursor: str | None = Query(None, description="opaque cursor from the previous page's next_cursor"),
    limit: int = Query(50, ge=1, le=500),
) -> PageRequest:
    after = None
    if cursor:
        try:
            after = base64.urlsafe_b64decode(cursor.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            raise field_error("cursor", "not a cursor this API gave out", code="cursor_invalid") from None
    return PageRequest(after=after, limit=limit)


# A list route's parameter `page: Paging` reads `?cursor=&limit=`.
Paging = Annotated[PageRequest, Depends(page_request)]


def make_page(rows: Sequence[Any], request: PageRequest, key: Callable[[Any], str], item: Callable[[Any], T]) -> Page[T]:
    """`rows` were fetched with limit+1 so that we know whether there is a next page."""
    more = len(rows) > request.limit
    rows = rows[: request.limit]
    cursor = base64.urlsafe_b64encode(key(rows[-1]).encode()).decode() if more and rows else None
    return Page[Any](items=[item(r) for r in rows], next_cursor=cursor)
