"""Geography: alert areas, radius rules, H3 snapping, the device-location index and targeting.

``areas``, ``rules`` and ``cells`` are pure; ``index`` and ``targeting`` take a Redis client.
"""
