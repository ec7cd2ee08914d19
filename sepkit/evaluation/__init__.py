"""Evaluation: separate test tracks, score them with BSS Eval (the paper's whole-track protocol or
museval's v4), write per-track JSON and print tables. See docs/evaluation.md.

* :func:`evaluate`, :func:`evaluate_recipe`: the evaluation loop (``sepkit evaluate``, ``sepkit run``).
* :func:`bss_eval_sources`, :func:`bss_eval_images_framewise`: the fast torch metrics.
* :func:`simple_sdr`: a cheap SDR without distortion filters, for training curves only.
* :mod:`.museval_backend`: museval's own metrics, loaded without ffmpeg.
"""

from .bss_eval import FILTER_LENGTH, FramewiseScores, SourcesScores, bss_eval_images_framewise, bss_eval_sources, simple_sdr
from .protocols import METRICS, PROTOCOLS, get_protocol
from .runner import evaluate, evaluate_datasets, evaluate_recipe, model_fingerprint
from .tables import compare, load_summary, print_summary, summarize

__all__ = [
    "FILTER_LENGTH",
    "METRICS",
    "PROTOCOLS",
    "FramewiseScores",
    "SourcesScores",
    "bss_eval_images_framewise",
    "bss_eval_sources",
    "compare",
    "evaluate",
    "evaluate_datasets",
    "evaluate_recipe",
    "get_protocol",
    "load_summary",
    "model_fingerprint",
    "print_summary",
    "simple_sdr",
    "summarize",
]
