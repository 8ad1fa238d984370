"""Decoding media, below both ingest/ (loaders) and index/ (embedders), which read it alike:
audio and video with PyAV (`decode`), PDF pages as images with pypdfium2 (`pdf_render`)."""
