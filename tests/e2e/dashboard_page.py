"""The staff dashboard in a real headless Chromium, shared by the dashboard's
end-to-end tests: a page that fails the test on any page error, and the
login with an API key."""

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Page

from tests.e2e.browser import chromium


@contextmanager
def watched_page(width: int = 1400, height: int = 1000) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page at this viewport; yields it and the page errors it has
    raised so far (the caller asserts on them)."""
    with chromium() as browser:
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page, errors


@contextmanager
def checked_page(width: int = 1400, height: int = 1000) -> Iterator[Page]:
    """A fresh page that fails the test, on leaving, if the page raised."""
    with watched_page(width, height) as (page, errors):
        yield page
        assert errors == [], errors


def log_in(page: Page, api_url: str, key: str) -> None:
    """Open the dashboard and log in with this key, up to the live floor."""
    page.goto(f"{api_url}/dashboard/")
    page.get_by_test_id("api-key").fill(key)
    page.get_by_test_id("login").click()
    page.get_by_test_id("live-floor").wait_for()
