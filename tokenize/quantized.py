"""Feature extractor + k-means = a unit tokenizer (the GSLM/TWIST/SpiRit-LM recipe, or the spectral baseline).

Why separate from the extractors: the same extractor feeds k-means training and tokenization, and the
same assignment code serves every extractor. Features stay on the model's device between the encoder and
the argmin (no host round trip on GPU).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .assign import Assigner
from .base import SpeechTokenizer
from .kmeans import KMeansModel
from .precision import PrecisionDecision, decide


class KMeansTokenizer:
    """A frame-feature backend (``needs_kmeans``) and its centroids, used as one tokenizer by the stage."""

    num_codebooks = 1

    def __init__(self, extractor: SpeechTokenizer, kmeans: KMeansModel):
        if kmeans.dim != extractor.dim:
            raise ValueError(f"k-means centroids have dim {kmeans.dim} but {extractor.label} features have dim "
                             f"{extractor.dim}; train k-means on this extractor/layer (`slmfactory kmeans train`)")
        trained_on = kmeans.meta.get("features")
        if trained_on and trained_on != extractor.label:
            import logging

            logging.getLogger("slmfactory.tokenize").warning(
                "k-means was trained on %s features but the tokenizer extracts %s", trained_on, extractor.label)
        self.extractor, self.kmeans = extractor, kmeans
        self.assigner = Assigner(kmeans.centroids, device=getattr(extractor, "device", "cpu"),
                                 standardize=kmeans.standardize)
        self.frame_rate_hz = extractor.frame_rate_hz
        self.vocab_size = kmeans.k
        self.label = f"{extractor.label}+km{kmeans.k}-{kmeans.short_hash}"
        self.precision: PrecisionDecision | None = None
        if hasattr(extractor, "precision_requested"):  # a neural extractor: resolve auto on units, not features
            self.precision = decide(extractor.precision_requested, extractor.precision_candidate,
                                    lambda p: setattr(extractor, "precision", p), self.encode, self.label)
            self.label += self.precision.tag()

    def encode(self, wavs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if getattr(self.extractor, "returns_torch", False):  # keep features on the device for the argmin
            feats = self.extractor.features(wavs, as_torch=True)
        else:
            feats = self.extractor.features(wavs)
        return self.assigner.split(feats)
