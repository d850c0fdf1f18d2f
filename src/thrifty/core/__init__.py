"""Shared building blocks of thrifty: configs, registry, runs, nn blocks, data, training, benchmarks.

Methods import core; core imports no method.
"""
