"""Text in: vocabulary, reading and caching a text, named corpora, generators, downloads,
TBPTT streams, items, a run's dataset.
"""
