"""Training of small heads on frozen models (`mmrag train ...`)."""
