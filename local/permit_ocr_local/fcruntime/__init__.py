"""The local Function Compute runtime: what FC does around the deployed function, rebuilt to run it here.

``context`` (the handler's context and OSS event shapes), ``deployment`` (s.yaml, resolved), ``trigger`` (which
uploads fire), ``invoker`` (the async queue, retries, onFailure), ``fcapi`` (the FC API stand-in fed with these
functions), ``stack`` (the stand-ins as one cloud account), ``function`` (``LocalFunction``: all of it at once),
``crash`` (an instance dying mid-step, for the exactly-once tests and the chaos run), ``interrupt`` (Ctrl-C in a
local command: the claims this process holds are released, one line, exit 130).
"""
