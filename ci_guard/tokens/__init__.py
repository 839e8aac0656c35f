"""Token estimates before a call, shared by the meter and the simulator.

The proxy estimates a request's input size for its caps (``meter/providers``); the simulator serves
counts from the very same functions, so the estimate and the served count of a request agree there.
This package sits below both: it imports nothing from ``ci_guard`` but the standard library, so the
simulator never imports meter code.
"""
