"""One run per cell under one budget, and its report (table, curves, gradient flow, page)."""
