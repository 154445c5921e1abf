"""Looking inside a model: the text traced through the cells and the measurements
(:mod:`charrnn.inspection.measures`), the page (:mod:`charrnn.inspection.page`) and
``charrnn inspect`` over a run (:mod:`charrnn.inspection.run`).
"""
