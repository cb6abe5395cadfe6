"""What the local stack simulates rather than stands in for: scenarios, outages, the cost model and the oracle
labeller. None of it ships to a device or a Lambda; the pure core keeps only what those share."""
