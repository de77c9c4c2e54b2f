"""Where the shipped example files are: config/ in a checkout, or the copy the
wheel carries as omnizone/_config."""

from pathlib import Path

_CHECKOUT_CONFIG = Path(__file__).resolve().parent.parent / "config"
_PACKAGED_CONFIG = Path(__file__).resolve().parent / "_config"


def shipped_config(relative: str) -> Path:
    for base in (_CHECKOUT_CONFIG, _PACKAGED_CONFIG):
        candidate = base / relative
        if candidate.exists():
            return candidate
    return _CHECKOUT_CONFIG / relative


DEFAULT_STORE = "stores/rivoli.yaml"
DEFAULT_SCENARIO = "scenarios/saturday-3db.yaml"
