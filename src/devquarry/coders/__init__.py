"""The coders behind ``classify`` and ``evaluate``: each fits on labelled texts and gives codes with
calibrated scores (``predict_proba``), or, for zero-shot, codes from the codebook's own text."""
