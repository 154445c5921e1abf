"""The network: CharRNN, the fast CPU recurrences, the one-step stepper, the cells written
out.
"""
