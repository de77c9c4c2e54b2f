"""Zone localization: radio map, per-window likelihood, HMM filter over the zone graph.

Pure numpy over all devices of a store at once (docs/localization.md). Imports
only numpy, the store model and the contract, so it can run anywhere.
"""

from .hmm import Hysteresis, forward_step, transition_matrix
from .likelihood import LikelihoodModel, log_likelihood, outside_log_likelihood
from .localizer import StoreLocalizer, ZoneDecision
from .radio_map import RadioMap, combine, fingerprint_map, path_loss_map
from .survey import Survey, SurveyError, load_survey, simulate_survey, write_survey

__all__ = [
    "Hysteresis",
    "LikelihoodModel",
    "RadioMap",
    "StoreLocalizer",
    "Survey",
    "SurveyError",
    "ZoneDecision",
    "combine",
    "fingerprint_map",
    "forward_step",
    "load_survey",
    "log_likelihood",
    "outside_log_likelihood",
    "path_loss_map",
    "simulate_survey",
    "transition_matrix",
    "write_survey",
]
