"""BLE: decode advertisements into device keys, aggregate per window."""
