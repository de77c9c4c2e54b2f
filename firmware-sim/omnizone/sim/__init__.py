"""The simulator: shoppers walk a store, their phones advertise, emulated radios
hand raw advertisement bytes to the real gateway code, ground truth is written."""
