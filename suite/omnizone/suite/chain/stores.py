"""A chain's store files, made from the example store: same floor, own ids.

Gateway ids are broker usernames, so every store's gateways are named after
the store (``s007-gw-entrance``)."""

import re
from pathlib import Path

from omnizone.paths import shipped_config

TEMPLATE = "stores/rivoli.yaml"
TEMPLATE_GATEWAYS = 10


def chain_store_files(stores: int, folder: Path, *, gateways_per_store: int = 10) -> list[Path]:
    """``stores`` files ``s000.yaml``… in ``folder``; raises ValueError on counts
    the template cannot give."""
    if stores < 1:
        raise ValueError(f"--stores must be at least 1, not {stores}")
    if gateways_per_store != TEMPLATE_GATEWAYS:
        raise ValueError(
            f"--gateways-per-store: the chain's stores are the example store "
            f"({TEMPLATE_GATEWAYS} gateways); {gateways_per_store} is not built"
        )
    text = shipped_config(TEMPLATE).read_text(encoding="utf-8")
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(stores):
        store = f"s{i:03d}"
        body = re.sub(r"(?m)^(\s*id:\s*)paris-rivoli\s*$", rf"\g<1>{store}", text, count=1)
        body = re.sub(r"(?m)^(\s*name:\s*)Rivoli flagship\s*$", rf"\g<1>Chain store {store}", body)
        body = re.sub(r"(?<![a-z0-9-])(gw-[a-z0-9-]+)\b", rf"{store}-\1", body)
        path = folder / f"{store}.yaml"
        path.write_text(body, encoding="utf-8")
        files.append(path)
    return files
