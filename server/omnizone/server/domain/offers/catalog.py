"""The product catalog: what a shopper sees on a shelf-tag tap, what an offer
points to, how many are in stock in each store and in which zones they are
displayed (for the cart/wishlist-item-in-zone triggers)."""

from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from omnizone.contract.base import StrictModel
from omnizone.contract.topics import IDENTIFIER_PATTERN
from omnizone.server.domain.offers.errors import (
    OffersConfigError,
    item_label,
    parse_yaml,
    read_yaml,
    top_level_list,
    validation_problems,
)
from omnizone.store import StorePlan
from omnizone.store.suggest import did_you_mean

__all__ = [
    "Catalog",
    "Gtin",
    "Product",
    "check_catalog",
    "gtin_check_digit",
    "is_gtin",
    "load_catalog",
    "parse_catalog",
]

StoreId = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]


def gtin_check_digit(body: str) -> int:
    """GS1 mod-10 check digit for the first 13 digits of a GTIN-14."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def is_gtin(value: str) -> bool:
    """A GTIN-14: 14 digits whose last is the GS1 check digit."""
    return (
        len(value) == 14
        and value.isascii()
        and value.isdigit()
        and gtin_check_digit(value[:13]) == int(value[13])
    )


def _valid_gtin(value: str) -> str:
    if len(value) != 14 or not value.isascii() or not value.isdigit():
        raise ValueError(f"{value!r} is not a GTIN-14 (14 digits, quoted in YAML)")
    if not is_gtin(value):
        raise ValueError(
            f"{value!r} has a wrong check digit (expected {gtin_check_digit(value[:13])})"
        )
    return value


def _quoted_gtin(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f'write the GTIN as a quoted string, e.g. "{value:014d}"')
    return value


Gtin = Annotated[str, BeforeValidator(_quoted_gtin), AfterValidator(_valid_gtin)]


class _Strict(StrictModel):
    model_config = ConfigDict(strict=True)


class Product(_Strict):
    gtin: Gtin
    name: str = Field(min_length=1, max_length=120)
    price: float = Field(ge=0, le=1_000_000)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    image: str | None = Field(None, max_length=500, description="URL path or absolute URL")
    description: str = Field("", max_length=2000)
    stock: dict[StoreId, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="units on hand per store id; absent store = 0"
    )
    zones: dict[StoreId, list[StoreId]] = Field(
        default_factory=dict, description="zones per store id where the product is displayed"
    )

    def stock_at(self, store: str) -> int:
        return self.stock.get(store, 0)


class Catalog(_Strict):
    products: list[Product] = []

    @model_validator(mode="after")
    def _unique_gtins(self) -> Self:
        seen: set[str] = set()
        for i, product in enumerate(self.products):
            if product.gtin in seen:
                raise ValueError(f"products[{i}]: duplicate gtin {product.gtin!r}")
            seen.add(product.gtin)
        return self

    @cached_property
    def by_gtin(self) -> Mapping[str, Product]:
        return {p.gtin: p for p in self.products}

    def product(self, gtin: str) -> Product | None:
        return self.by_gtin.get(gtin)

    def stock_at(self, gtin: str, store: str) -> int:
        """Units of ``gtin`` on hand in ``store``; 0 for a product not in the catalog."""
        product = self.by_gtin.get(gtin)
        return product.stock_at(store) if product else 0

    @cached_property
    def _displayed(self) -> Mapping[tuple[str, str], frozenset[str]]:
        found: dict[tuple[str, str], set[str]] = {}
        for product in self.products:
            for store, zones in product.zones.items():
                for zone in zones:
                    found.setdefault((store, zone), set()).add(product.gtin)
        return {key: frozenset(gtins) for key, gtins in found.items()}

    def displayed_in(self, store: str, zone: str) -> frozenset[str]:
        """GTINs displayed in a zone of a store."""
        return self._displayed.get((store, zone), frozenset())


def load_catalog(path: str | Path, plans: Iterable[StorePlan] = ()) -> Catalog:
    """Read a catalog file. With store plans, the zones listed for those stores
    must exist in them (stores without a plan here are not checked)."""
    source, data = read_yaml(path)
    return catalog_from_data(data, source, plans)


def parse_catalog(text: str, source: str = "<catalog>", plans: Iterable[StorePlan] = ()) -> Catalog:
    return catalog_from_data(parse_yaml(text, source), source, plans)


def catalog_from_data(data: Any, source: str, plans: Iterable[StorePlan] = ()) -> Catalog:
    items = top_level_list(data, "products", source)
    plan_by_id = {plan.id: plan for plan in plans}
    problems: list[str] = []
    products: list[Product] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        label = item_label("products", index, item, "gtin")
        try:
            product = Product.model_validate(item)
        except ValidationError as error:
            problems += [f"{label}: {p}" for p in validation_problems(error, item)]
            continue
        if product.gtin in seen:
            problems.append(f"{label}: gtin: duplicate of products[{seen[product.gtin]}]")
        seen.setdefault(product.gtin, index)
        problems += [f"{label}: {p}" for p in check_product(product, plan_by_id)]
        products.append(product)
    if problems:
        raise OffersConfigError(source, problems)
    return Catalog(products=products)


def check_product(product: Product, plans: Mapping[str, StorePlan]) -> list[str]:
    """Zones that the given store plans do not have."""
    problems = []
    for store, zones in product.zones.items():
        plan = plans.get(store)
        if plan is None:
            continue
        known = {z.id for z in plan.zones}
        for j, zone in enumerate(zones):
            if zone not in known:
                problems.append(
                    f"zones.{store}[{j}]: zone {zone!r} is not in store {store}"
                    + did_you_mean(zone, known)
                )
    return problems


def check_catalog(catalog: Catalog, plans: Iterable[StorePlan]) -> list[str]:
    """Cross-check an already-built catalog against store plans."""
    plan_by_id = {plan.id: plan for plan in plans}
    return [
        f"{item_label('products', i, {'gtin': p.gtin}, 'gtin')}: {problem}"
        for i, p in enumerate(catalog.products)
        for problem in check_product(p, plan_by_id)
    ]
