"""Streaming detectors: error spikes, payload outliers, new countries, credential stuffing and
enumeration, fed by the ``monitor`` guard and the security events (see docs/monitoring.md)."""
