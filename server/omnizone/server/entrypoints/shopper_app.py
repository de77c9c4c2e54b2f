"""Serves the reference shopper app (a PWA, docs/shopper-app.md) from the
server itself: no CDN and no build step, so the files in ``web/app`` are
exactly what the phone runs."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

APP_FILES = Path(__file__).resolve().parent.parent / "web" / "app"


def mount_shopper_app(app: FastAPI, files: Path = APP_FILES) -> None:
    """``/app/`` and every app route (``/app/p/<gtin>`` is what NFC shelf tags
    hold) answer with the single page; assets live under ``/app/static``."""
    app.mount("/app/static", StaticFiles(directory=files), name="shopper-app-static")

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
        return FileResponse(files / "index.html", headers={"Cache-Control": "no-cache"})
