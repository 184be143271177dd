"""Prometheus rules, the Grafana dashboard, and tools that run them on this machine."""
