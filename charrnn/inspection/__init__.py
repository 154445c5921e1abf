"""Looking inside a model: scoring a text, tracing it through the cells, the measurements,
the page, the lecture's hello.
"""
