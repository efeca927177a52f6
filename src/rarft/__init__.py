"""rarft: Retrieval-Augmented Reinforcement Fine-Tuning, as a reproducible pipeline."""

__version__ = "0.1.0"
