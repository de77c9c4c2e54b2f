"""The strict pydantic base every omnizone model derives from: files, settings
and messages are written by people or other programs, so an unknown field is
a mistake to report (usually a typo), and a parsed value is never changed
after validation. A model that needs more (``allow_inf_nan=False`` on the
wire, ``strict=True`` for campaigns) extends this config; pydantic merges a
subclass's ``model_config`` into its base's."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
