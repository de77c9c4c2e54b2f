"""Evaluations against the simulator's ground truth (`omnizone eval …`)."""
