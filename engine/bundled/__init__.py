"""Our own implementation of the Dassl API that CoOp-style trainers use.

Written from Dassl's documented behaviour (names, config keys, log formats,
checkpoint layout) so that trainers run unchanged on it or on a real Dassl.
"""
