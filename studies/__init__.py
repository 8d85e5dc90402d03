"""decaylab."""
