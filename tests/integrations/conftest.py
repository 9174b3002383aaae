"""The integrations' tests: tiny trainings with the real frameworks on the CPU."""

from __future__ import annotations

import os

# Keras 3 on the torch backend (the only framework backend the test extra installs); nothing is
# ever fetched from a model hub.
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
