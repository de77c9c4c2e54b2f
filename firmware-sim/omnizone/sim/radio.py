"""Which gateways hear an advert, and how loud: vectorized over phones × gateways."""

import numpy as np
from numpy.typing import NDArray

from omnizone.sim.scenario import RadioModel


def receptions(
    phones: NDArray[np.float64],
    gateways: NDArray[np.float64],
    model: RadioModel,
    rng: np.random.Generator,
    power_1m_dbm: NDArray[np.float64] | None = None,
    exponent: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """RSSI (dBm) for every phone/gateway pair, and which pairs were heard.

    phones: (n, 2) positions in metres; gateways: (g, 2); ``power_1m_dbm`` and
    ``exponent`` (g,): each receiving gateway's own (``RadioModel.per_gateway``),
    default the model's one value for all.
    """
    power = model.tx_power_1m_dbm if power_1m_dbm is None else power_1m_dbm[None, :]
    slope = model.path_loss_exponent if exponent is None else exponent[None, :]
    distance = np.linalg.norm(phones[:, None, :] - gateways[None, :, :], axis=2)
    distance = np.maximum(distance, 0.5)
    rssi = (
        power
        - 10.0 * slope * np.log10(distance)
        + rng.normal(0.0, model.shadowing_sigma_db, size=distance.shape)
    )
    loss = np.clip(model.base_loss + model.loss_per_10m * distance / 10.0, 0.0, 1.0)
    heard = (rssi >= model.sensitivity_dbm) & (rng.random(distance.shape) >= loss)
    return rssi, heard
