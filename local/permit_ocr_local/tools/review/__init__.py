"""``permit-ocr review``: the local web page where a person approves or corrects results flagged
``needsReview`` (rules.py: the pure rules; store.py: OSS and MNS; app.py: the Flask application)."""
