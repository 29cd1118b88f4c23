"""Hub code: exactly the files ``save_pretrained`` ships next to the weights (configs, models, CRF, pipeline, BIO
tags, encoder helpers). They import only the standard library, ``torch``, ``transformers`` and each other, with
relative imports (``tests/test_hub_code.py`` checks it), so a model runs through ``trust_remote_code`` on a
machine without this package. ``modeling_ade/__init__.py`` registers them with the Auto classes."""
