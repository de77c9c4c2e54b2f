"""Recordings of a store's gateway traffic: what ``sim record`` writes, what
``sim import`` makes from other tools' readings, and what ``sim replay`` and
``eval replay`` read (docs/recording.md)."""

from .format import (
    FORMAT,
    VERSION,
    RecordedMessage,
    Recording,
    RecordingError,
    RecordingHeader,
    RecordingWriter,
    iter_messages,
    part_path,
    read_header,
    read_recording,
    recording_files,
    write_recording,
)

__all__ = [
    "FORMAT",
    "VERSION",
    "RecordedMessage",
    "Recording",
    "RecordingError",
    "RecordingHeader",
    "RecordingWriter",
    "iter_messages",
    "part_path",
    "read_header",
    "read_recording",
    "recording_files",
    "write_recording",
]
