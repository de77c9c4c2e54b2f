"""What the read routes answer with, shared by the analytics, heatmap, insight,
predictions and alerts routes: an unknown store as 404 and a bad range as 422
naming the query parameter, and a CSV table as a download."""

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException, status
from fastapi.responses import Response

from omnizone.server.service.analytics import BadRange, UnknownStore


@contextmanager
def store_range_errors() -> Iterator[None]:
    """UnknownStore -> 404; BadRange -> 422 with ``loc: ["query", field]``."""
    try:
        yield
    except UnknownStore as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except BadRange as error:
        raise HTTPException(
            422,  # the name changed across Starlette versions
            [{"loc": ["query", error.field], "msg": str(error), "type": "value_error"}],
        ) from None


def csv_download(table: str, filename: str) -> Response:
    """A CSV table, offered as ``filename`` (without its .csv)."""
    return Response(
        table,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )
