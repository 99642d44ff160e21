"""Ratio benchmarks: eventplatform against raw clients and peer libraries, same run, same data."""
