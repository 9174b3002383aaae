"""One module per training framework, each an optional extra (``pip install
'runicorn-lite[lightning]'``, ``[transformers]``, ``[keras]``, ``[xgboost]``, ``[lightgbm]``).

Nothing here is imported by ``import runicorn_lite``; a framework is imported only by its own
module. Every integration takes ``init``'s arguments (``project``, ``name``, ``root``, ``tags``,
…) or an existing ``run=``: a run it creates it also finishes (``failed`` when training raises),
a run it is given is left to its owner.
"""
