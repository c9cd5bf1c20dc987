"""Corpora, labels, features, the feature cache and the input pipeline."""
