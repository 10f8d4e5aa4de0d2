"""The Kafka side: the published contract, the envelope, the relay that publishes the notification
log, and the projection worker that builds the read side from the topic."""

import warnings

with warnings.catch_warnings():  # kafka-python 3.0 loads its protocol schemas through a deprecated importlib API
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka  # noqa: F401
