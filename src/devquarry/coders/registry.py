"""The trained coders by name, and each codebook's default (the best measured on held-out data)."""

from __future__ import annotations

from devquarry.coders.supervised import SupervisedCoder

CODERS = {"lexical": SupervisedCoder}


def available(name: str) -> bool:
    return name in CODERS


def make_coder(name: str):
    return CODERS[name]()


def default_coder(codebook_id: str) -> str:
    return "lexical"
