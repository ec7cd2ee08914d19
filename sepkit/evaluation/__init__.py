"""Evaluation: separate test tracks, score them with BSS Eval (the paper's whole-track protocol or
museval's v4), write per-track JSON and print tables. See docs/evaluation.md.

* :func:`evaluate_recipe`: the evaluation of ``sepkit evaluate`` and ``sepkit run``; :func:`evaluate`
  the same for tracks in memory. :class:`EvaluationOptions` says how (checked once).
* :func:`bss_eval_sources`, :func:`bss_eval_images_framewise`: the fast torch metrics.
* :func:`simple_sdr`: a cheap SDR without distortion filters, for training curves only.
* :mod:`.museval_backend`: museval's own metrics, loaded without ffmpeg.
"""

from .bss_eval import FILTER_LENGTH, FramewiseScores, SourcesScores, bss_eval_images_framewise, bss_eval_sources, simple_sdr
from .options import EvaluationOptions, engine_options
from .protocols import METRICS, PROTOCOLS, get_protocol
from .runner import evaluate, evaluate_recipe, model_fingerprint
from .tables import compare, load_summary, print_summary, summarize

__all__ = [
    "FILTER_LENGTH",
    "METRICS",
    "PROTOCOLS",
    "EvaluationOptions",
    "FramewiseScores",
    "SourcesScores",
    "bss_eval_images_framewise",
    "bss_eval_sources",
    "compare",
    "engine_options",
    "evaluate",
    "evaluate_recipe",
    "get_protocol",
    "load_summary",
    "model_fingerprint",
    "print_summary",
    "simple_sdr",
    "summarize",
]
