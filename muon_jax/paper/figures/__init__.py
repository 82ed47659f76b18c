"""Figures drawn from experiment results dicts, one module per experiment."""
