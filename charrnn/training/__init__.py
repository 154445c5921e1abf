"""The loop (owning its checkpoint state), launch and signals, schedule and clock,
evaluation, torchrun, auto settings, fine-tuning, TensorBoard.
"""
