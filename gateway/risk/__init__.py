"""Risk: the book, pricing from live quotes, the pre-trade checks, the risk measures and the
monitor that turns them into REDUCE_ONLY or a halt."""
