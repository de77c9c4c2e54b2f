"""A shopper service over a real SQLite file, and the HTTP routes in front of it."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from omnizone.server.adapters.db import make_engine
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.domain.identity import EidPolicy
from omnizone.server.entrypoints.api import _authorizer
from omnizone.server.entrypoints.shopper_api import shopper_router
from omnizone.server.service.shoppers import ShopperService

STORE = "paris-rivoli"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
WEBHOOK_SECRET = b"a-long-shared-webhook-secret"
ASSOCIATE_KEY = "associate-key-0001"
READ_KEY = "read-only-key-0001"
GTIN = "09506000134352"
OTHER_GTIN = "09506000134369"


class Clock:
    """The service's clock, moved by hand so expiry is tested without waiting."""

    def __init__(self, now_ms: int = T0) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'omnizone.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def shopper_repo(engine: Engine) -> ShopperRepository:
    return ShopperRepository(engine)


def make_service(repo: ShopperRepository, clock: Clock) -> ShopperService:
    return ShopperService(
        [STORE],
        repo,
        eid_policy=EidPolicy(min_exponent=10, max_exponent=10),
        webhook_secret=WEBHOOK_SECRET,
        clock=clock,
    )


@pytest.fixture
def shoppers(shopper_repo: ShopperRepository, clock: Clock) -> ShopperService:
    return make_service(shopper_repo, clock)


def make_client(service: ShopperService) -> TestClient:
    require = _authorizer({ASSOCIATE_KEY: frozenset({"associate"}), READ_KEY: frozenset({"read"})})
    app = FastAPI()
    app.include_router(shopper_router(service, require))
    return TestClient(app)


@pytest.fixture
def client(shoppers: ShopperService) -> Iterator[TestClient]:
    with make_client(shoppers) as test_client:
        yield test_client
