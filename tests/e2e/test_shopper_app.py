"""The reference shopper app in a real browser: served by the server (no
CDN), it registers, asks for consent, and keeps the shopper's choices."""

import httpx

from tests.e2e.browser import chromium
from tests.e2e.conftest import Backend


def test_a_shopper_joins_chooses_consent_and_can_erase_everything(backend: Backend) -> None:
    base = backend.server.api_url
    with chromium() as browser:
        page = browser.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{base}/app/")
        page.get_by_test_id("join").click()
        page.get_by_test_id("consent-personalized_offers").check()
        page.get_by_test_id("save-consent").click()
        page.get_by_test_id("empty-inbox").wait_for()
        stored = page.evaluate("JSON.parse(localStorage.getItem('omnizone.shopper'))")
        assert len(stored["eid_key"]) == 32 and stored["shopper_id"]
        auth = {"Authorization": f"Bearer {stored['token']}"}
        consent = httpx.get(f"{base}/api/v1/me/consent", headers=auth).json()
        assert consent == {"location_analytics": False, "personalized_offers": True}
        # everything the page loaded came from this server: nothing from a CDN
        assert requests and all(url.startswith(base) or url.startswith("ws") for url in requests)

        page.goto(f"{base}/app/settings")
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_test_id("erase").click()
        page.get_by_test_id("join").wait_for()
        assert httpx.get(f"{base}/api/v1/me/consent", headers=auth).status_code == 401
