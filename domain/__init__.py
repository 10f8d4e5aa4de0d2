"""The care continuum's domain: pure Python, no I/O; the clock and the actor are passed in."""
