"""Metrics from maps: histograms and counters (reading, rendering) and the Prometheus
text exposition of them."""
