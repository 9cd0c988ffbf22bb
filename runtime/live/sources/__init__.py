"""The live sources, chosen by URI (`realsense://`, `file://REC.db3`, `v4l2:///dev/video0`, `csi://0`,
`rtsp://…`, a video file, `sim://`; audio `mic://`, `file://X.wav`), each registered by its own module
(`registry`). `open_input` builds the source a run reads: the `--input` URI's, with the `--audio`
URI's sound beside it."""
from __future__ import annotations

from mke.runtime.live.sources.base import Source
from mke.runtime.live.sources.registry import (ResolvedSource, SourceContext, SourceEntry, list_sources,
                                               model_image_size, open_audio, open_source, register_source,
                                               registered_sources, resolve_source)

__all__ = ["ResolvedSource", "Source", "SourceContext", "SourceEntry", "list_sources", "model_image_size",
           "open_audio", "open_input", "open_source", "register_source", "registered_sources", "resolve_source"]


def open_input(input_uri: str | ResolvedSource, audio_uri: str | ResolvedSource | None,
               context: SourceContext) -> Source:
    """The source `input_uri` names (not opened yet), with `audio_uri`'s stream beside it when given: each
    frame then gets the `context.audio_seconds` of audio that end at it. Either may be resolved already."""
    source = open_source(input_uri, context)
    if audio_uri is None:
        return source
    from mke.runtime.live.sources.with_audio import WithAudio

    return WithAudio(source, open_audio(audio_uri, context), context.audio_seconds)
