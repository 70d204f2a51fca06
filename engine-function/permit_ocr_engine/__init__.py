"""permit-ocr's engine function: the embedded recognizer (permit_ocr_local.engine) as a second FC 3.0 function,
invoked synchronously by the main function with the image's bytes in the request (docs/selfhosted.md)."""
