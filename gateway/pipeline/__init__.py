"""The signal pipeline: the engine that decides on a signal and follows its order, the submitter,
decision assembly, ids, restart recovery and reconciliation with the broker."""
