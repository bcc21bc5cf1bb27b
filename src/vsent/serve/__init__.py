"""``vsent serve``: an HTTP service (FastAPI on uvicorn) with a web page, for a trained model.

``create_app(predictor, checkpoint=..., config=ServeConfig(...))`` builds the app;
see :mod:`vsent.serve.app` for the endpoints, :mod:`vsent.serve.batching` for the dynamic
micro-batching and :mod:`vsent.serve.limits` for the limits. Needs the ``serve`` extra.
"""

from vsent.serve.app import ServeConfig, create_app, served_card
from vsent.serve.limits import Limits

__all__ = ["Limits", "ServeConfig", "create_app", "served_card"]
