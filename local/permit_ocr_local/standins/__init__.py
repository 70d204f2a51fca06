"""Local stand-ins for the cloud services the function talks to: one package per service (``oss``, ``ocr``,
``mns``, ``fc``), each split alike (``state``, ``rules``, ``server`` = the HTTP layer, ``auth``, ``errors``), and
beside them what they share: ``http`` (the threaded server and fault hook), ``acs3`` (the ACS3 signature used by
OCR and FC), ``keyring`` (credentials), ``faults`` (fault injection) and ``ram`` (policy evaluation)."""
