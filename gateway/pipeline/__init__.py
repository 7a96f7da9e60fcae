"""The signal pipeline: the engine that decides on a signal and follows its order, and the
parts it wires (admission, sending, conclusion, broker events, orders of unknown fate, decision
records, restart recovery, reconciliation with the broker)."""
