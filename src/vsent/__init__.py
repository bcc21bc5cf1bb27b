"""vsent: visual sentiment prediction.

The package follows the pipeline, one purpose per module (docs/ARCHITECTURE.md maps them):

* :mod:`vsent.data`: datasets (``load_dataset``), folds (``make_folds``), image caches;
* :mod:`vsent.models`: the model registry (``create_model``, ``list_models``), checkpoints
  (``save_checkpoint``, ``load_checkpoint``), weights;
* :mod:`vsent.crossval`: ``crossval`` / ``finetune`` with a :class:`vsent.config.RunConfig`;
* :mod:`vsent.predict`: :class:`~vsent.predict.Predictor` (scores images, files or folders);
* :mod:`vsent.analyses`: the papers' analyses (probes, baselines, PCNN, affective regions,
  fusion, explanations); :mod:`vsent.reports`: reproductions beside the published numbers;
* :mod:`vsent.serve`, :mod:`vsent.batch`, :mod:`vsent.export`: serving, batch scoring, export.

``import vsent`` loads nothing heavy (no torch): import the module you need.
"""
__version__ = "0.1.0"
