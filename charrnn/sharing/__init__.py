"""Handing a model to others: a folder in the layout model hubs use, one HTML page that
runs the model in a browser, and one step as an ONNX or TorchScript graph.
"""
