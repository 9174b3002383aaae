"""Queries over the index: experiments, metrics (with downsampling), analytics."""
