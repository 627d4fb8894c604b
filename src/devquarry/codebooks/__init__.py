"""Codebooks: challenge taxonomies as YAML, shipped with devquarry or written by the user."""

from devquarry.codebooks.loader import Code, Codebook, codebooks_of, keep_codebook, list_codebooks, load_codebook

__all__ = ["Code", "Codebook", "codebooks_of", "keep_codebook", "list_codebooks", "load_codebook"]
