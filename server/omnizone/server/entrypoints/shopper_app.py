"""Serves the reference shopper app (a PWA, docs/shopper-app.md) from the
server itself: no CDN and no build step, so the files in ``web/app`` are
exactly what the phone runs."""

from pathlib import Path, PurePosixPath

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

APP_FILES = Path(__file__).resolve().parent.parent / "web" / "app"


def mount_shopper_app(app: FastAPI, files: Path = APP_FILES) -> None:
    """``/app/`` and every app route (``/app/p/<gtin>`` is what NFC shelf tags
    hold) answer with the single page; assets live under ``/app/static``."""
    app.mount("/app/static", StaticFiles(directory=files), name="shopper-app-static")
    # Product images of the catalog (``image: /app/img/<name>.svg``).
    app.mount("/app/img", StaticFiles(directory=files / "img"), name="shopper-app-images")

    @app.get("/app/sw.js", include_in_schema=False)
    def service_worker() -> FileResponse:
        # Served from /app/ so that it may control every page under /app/.
        return FileResponse(
            files / "sw.js",
            media_type="text/javascript",
            headers={"Service-Worker-Allowed": "/app/", "Cache-Control": "no-cache"},
        )

    @app.get("/app", include_in_schema=False)
    @app.get("/app/{route:path}", include_in_schema=False)
    def page(route: str = "") -> FileResponse:
        if is_asset_path(route):  # a missing file, not a page: no HTML for an <img>
            raise HTTPException(status_code=404, detail=f"no file /app/{route}")
        return FileResponse(files / "index.html", headers={"Cache-Control": "no-cache"})


def is_asset_path(route: str) -> bool:
    """A path that names a file (its last segment has an extension: ``x.png``,
    ``app.js``) rather than a page of the app (``p/09506000134352``): the
    single-page fallback answers pages only, so a missing file is a 404."""
    suffix = PurePosixPath(route).suffix
    return bool(suffix) and suffix[1:].isalnum()
