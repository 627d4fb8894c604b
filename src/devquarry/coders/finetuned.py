"""The fine-tuned coder (SetFit-style): the packaged MiniLM is first tuned on pairs of labelled texts,
pulling texts of one code together and pushing texts of different codes apart (cosine-similarity
loss, one pass, on the CPU), then the stacked coder runs on the tuned vectors.

Tuning changes the encoder, so nothing can come from the embedding cache: every fit tunes anew and
every text is embedded by the tuned model. Worth it for short texts (titles), where the frozen
encoder is the stronger half; see bench/taxonomy.py for its held-out figures and cost."""

from __future__ import annotations

import random

import numpy as np

from devquarry.coders.stacked import StackedCoder

WHAT = "the setfit coder"


def contrastive_pairs(y: list, n_pairs: int, seed: int) -> list[tuple[int, int, float]]:
    """``n_pairs`` (i, j, target): alternately a text with another of its code (1.0) and with one of
    another code (0.0), anchors drawn at random with a fixed seed."""
    rng = random.Random(seed)
    by_code: dict = {}
    for i, c in enumerate(y):
        by_code.setdefault(c, []).append(i)
    codes = list(by_code)
    out: list[tuple[int, int, float]] = []
    while len(out) < n_pairs:
        i = rng.randrange(len(y))
        same = by_code[y[i]]
        if len(same) > 1:
            j = rng.choice(same)
            while j == i:
                j = rng.choice(same)
            out.append((i, j, 1.0))
        other = rng.choice([c for c in codes if c != y[i]])
        out.append((i, rng.choice(by_code[other]), 0.0))
    return out[:n_pairs]


def tune_minilm(texts: list[str], y: list, *, pairs: int, lr: float, batch: int, max_tokens: int, seed: int):
    """A copy of the packaged MiniLM tuned on contrastive pairs of ``texts``; deterministic by seed."""
    from devquarry.embeddings.minilm import packaged_minilm
    from devquarry.extras import require

    torch = require("torch", "minilm", WHAT)
    SentenceTransformer = require("sentence_transformers", "minilm", WHAT).SentenceTransformer
    require("transformers", "minilm", WHAT).logging.set_verbosity_error()
    torch.manual_seed(seed)
    model = SentenceTransformer(str(packaged_minilm()), device="cpu", local_files_only=True)
    model.max_seq_length = max_tokens
    todo = contrastive_pairs(list(y), pairs, seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        left = model(model.preprocess([texts[i] for i, _, _ in chunk]))["sentence_embedding"]
        right = model(model.preprocess([texts[j] for _, j, _ in chunk]))["sentence_embedding"]
        cosine = torch.nn.functional.cosine_similarity(left, right)
        loss = torch.nn.functional.mse_loss(cosine, torch.tensor([t for _, _, t in chunk], dtype=cosine.dtype))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return model


class _TunedEncoder:
    """Texts -> normalised vectors of a tuned model; kept out of ``get_params`` (not a parameter)."""

    def __init__(self, model) -> None:
        self.model = model

    def __call__(self, texts: list[str]) -> np.ndarray:
        from devquarry.embeddings.base import normalise

        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return normalise(self.model.encode(list(texts), batch_size=64, show_progress_bar=False, convert_to_numpy=True))

    def __deepcopy__(self, memo):  # a fitted coder copied by sklearn shares the (read-only) model
        return self


class FineTunedCoder(StackedCoder):
    """:class:`StackedCoder` on MiniLM vectors tuned to the training codes (``pairs`` contrastive
    pairs, learning rate ``lr``, texts cut at ``max_tokens``)."""

    def __init__(
        self,
        pairs: int = 1000,
        lr: float = 2e-5,
        batch: int = 16,
        max_tokens: int = 64,
        lexical_C: float = 0.3,
        dense_C: float = 1.0,
        meta_C: float = 1.0,
        folds: int = 3,
        random_state: int = 42,
    ) -> None:
        super().__init__(lexical_C=lexical_C, dense_C=dense_C, meta_C=meta_C, folds=folds, random_state=random_state, embed=None)
        self.pairs = pairs
        self.lr = lr
        self.batch = batch
        self.max_tokens = max_tokens

    @classmethod
    def _get_param_names(cls):
        return sorted(["pairs", "lr", "batch", "max_tokens", "lexical_C", "dense_C", "meta_C", "folds", "random_state"])

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self.encoder_(list(texts))

    def fit(self, X, y):
        texts = list(X)
        model = tune_minilm(
            texts, list(y), pairs=self.pairs, lr=self.lr, batch=self.batch, max_tokens=self.max_tokens, seed=self.random_state
        )
        self.encoder_ = _TunedEncoder(model)
        return super().fit(texts, y)
