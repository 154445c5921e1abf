"""Scoring a text: how well a model predicts it, per character and per line — a text in
memory (:mod:`charrnn.scoring.text`) or a file of any size in blocks
(:mod:`charrnn.scoring.file`)."""
