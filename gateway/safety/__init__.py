"""Safety: the halt manager and its durable state, the kill switch, the failure tracker."""
