"""Zone localization: radio map, per-window likelihood, HMM filter over the
zone graph or over a grid of floor cells.

Pure numpy (and scipy's sparse matrices) over all devices of a store at once
(docs/localization.md). Imports only those, the store model and the contract.
"""

from .grid import FloorGrid, Motion, floor_grid, motion_transition
from .hmm import Hysteresis, forward_step, transition_matrix
from .likelihood import LikelihoodModel, log_likelihood, outside_log_likelihood
from .localizer import StoreLocalizer, ZoneDecision
from .radio_map import RadioMap, combine, fingerprint_map, path_loss_map, place_map
from .survey import Survey, SurveyError, load_survey, simulate_survey, write_survey

__all__ = [
    "FloorGrid",
    "Hysteresis",
    "LikelihoodModel",
    "Motion",
    "RadioMap",
    "StoreLocalizer",
    "Survey",
    "SurveyError",
    "ZoneDecision",
    "combine",
    "fingerprint_map",
    "floor_grid",
    "forward_step",
    "load_survey",
    "log_likelihood",
    "motion_transition",
    "outside_log_likelihood",
    "path_loss_map",
    "place_map",
    "simulate_survey",
    "transition_matrix",
    "write_survey",
]
