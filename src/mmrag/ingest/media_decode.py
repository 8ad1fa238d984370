"""Moved to `mmrag.media.decode`; this name stays for the importers not yet updated."""

from mmrag.media.decode import (
    DecodedAudio,
    Frame,
    MediaInfo,
    MediaSource,
    decode_audio,
    iter_frames,
    open_container,
    probe,
)

__all__ = [
    "DecodedAudio",
    "Frame",
    "MediaInfo",
    "MediaSource",
    "decode_audio",
    "iter_frames",
    "open_container",
    "probe",
]
