"""The source registry: each live source registers its URI scheme(s) beside its own code.

    @dataclass(frozen=True)
    class SimOptions:
        seed: int = 0

    @register_source("sim", options=SimOptions, modalities={"rgb", "depth"}, form="sim://",
                     summary="the pybullet rooms, no hardware")
    def open_sim(options: SimOptions, context: SourceContext) -> Source:
        return SimCamera(size=context.image_size, seed=options.seed, real_time=context.real_time)

A source is found by its URI's scheme; `file://PATH` and bare paths by the suffixes a source claims
(`suffixes=(".db3", ".bag")`), a bare text such as a device number by a source's `bare` test. The URI's
address fills the option named `target`, its query the others (`options.parse_options`). `role` says
where a source goes: "input" (`--input`: it gives frames) or "audio" (`--audio`: a sound stream that
each frame gets the window of, beside the input). The modules of SOURCE_PACKAGES are imported at the
first lookup, so a new source is one module there that registers itself; sources import their SDKs
in open(), never at import.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from mke.runtime.errors import MkeError
from mke.runtime.live.sources.options import NoOptions, describe_options, option_summary, parse_options
from mke.runtime.live.sources.uri import SourceURI, parse_uri

SOURCE_PACKAGES = ("mke.runtime.live.sources", "mke.runtime.live.audio")
ROLES = {"input": "--input", "audio": "--audio"}   # the mke-live option each role of source goes with
_TITLES = {"input": "--input URI: where the frames come from", "audio": "--audio URI: sound beside the frames"}


@dataclass(frozen=True)
class SourceContext:
    """What every source may need from the run (never from the command line's own object)."""

    image_size: tuple[int, int] = (160, 120)   # (width, height) in pixels the model's image inputs take
    real_time: bool = True     # play files, recordings and sim at their own pace (False: `--fast`)
    audio_rate: int = 16000    # Hz the model's audio is at
    audio_channels: int = 1
    audio_seconds: float = 1.0   # the window of audio each frame gets, ending at the frame

    @classmethod
    def for_model(cls, spec, real_time: bool = True) -> SourceContext:
        """Sizes and audio format from the model spec (`audio_params`: 1 s mono 16 kHz for models without audio)."""
        from mke.runtime.live.inputs import audio_params

        audio = audio_params(spec)
        return cls(image_size=model_image_size(spec), real_time=bool(real_time), audio_rate=int(audio["sample_rate"]),
                   audio_channels=int(audio["channels"]), audio_seconds=float(audio["seconds"]))


def model_image_size(spec, default: tuple[int, int] = (160, 120)) -> tuple[int, int]:
    """(width, height) in pixels of the model's image inputs: the first fixed (…, H, W) input of an
    image modality (`Modality.image`: rgb, depth, rgb_clip); `default` when the model takes none."""
    from mke.runtime.modalities import modality_of

    for i in spec.inputs:
        if len(i.shape) >= 4 and min(i.shape[-2:]) > 0 and modality_of(i).image:
            return int(i.shape[-1]), int(i.shape[-2])
    return default


@dataclass(frozen=True)
class SourceEntry:
    factory: Callable[[Any, SourceContext], Any]   # (options, context) → a Source (or an audio stream), not opened
    schemes: tuple[str, ...]
    form: str                  # how a user writes it: "realsense://[SERIAL]"
    summary: str               # what it is, one clause
    modalities: frozenset[str]  # the LiveFrame fields it fills
    options: type = NoOptions
    target: str | None = None  # the option the URI's address fills
    suffixes: tuple[str, ...] = ()   # file://PATH and bare paths with these suffixes
    bare: Callable[[str], bool] | None = field(default=None, compare=False)   # bare texts it claims ("0")
    role: str = "input"
    whole_uri: bool = False    # the URI goes to the source as it is (a stream URL: its query is the server's)

    @property
    def key(self) -> str:
        return f"{self.factory.__module__}.{self.factory.__qualname__}"

    def describe(self, width: int = 0) -> str:
        """One line: how it is written (padded to `width`), what it gives, what it is, its options."""
        opts = "" if self.whole_uri else option_summary(self.options, skip=self.target)
        return (f"{self.form:<{width}}  {', '.join(sorted(self.modalities)):<10}  {self.summary}"
                + (f"  [?{opts.replace(' ', '&')}]" if opts else ""))


_ENTRIES: dict[str, SourceEntry] = {}   # by factory key
_discovered = False


def register_source(*schemes: str, form: str, summary: str, modalities: Iterable[str], options: type = NoOptions,
                    target: str | None = None, suffixes: Iterable[str] = (), bare: Callable[[str], bool] | None = None,
                    role: str = "input", whole_uri: bool = False):
    """Decorator for a source's factory `(options, context) -> source`; see the module docstring."""
    if role not in ROLES:
        raise MkeError(f"register_source: role must be one of {', '.join(ROLES)}, got {role!r}")

    def add(factory: Callable) -> Callable:
        entry = SourceEntry(factory=factory, schemes=tuple(s.lower() for s in schemes), form=form, summary=summary,
                            modalities=frozenset(modalities), options=options, target=target,
                            suffixes=tuple(s.lower() for s in suffixes), bare=bare, role=role, whole_uri=whole_uri)
        describe_options(options)   # a bad option type fails at registration, not at a user's run
        if "file" in entry.schemes:
            raise MkeError(f"source {entry.key}: file:// is looked up by suffix: give suffixes=(...) instead")
        if whole_uri and target is None:
            raise MkeError(f"source {entry.key}: whole_uri needs a target option that receives the URI")
        for other in _ENTRIES.values():
            taken = set(other.schemes) & set(entry.schemes) | set(other.suffixes) & set(entry.suffixes)
            if taken and other.key != entry.key:
                raise MkeError(f"source {entry.key}: {', '.join(sorted(taken))} is taken by {other.key}")
        _ENTRIES[entry.key] = entry
        return factory

    return add


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for package_name in SOURCE_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package_name}.{info.name}")


def registered_sources(role: str | None = None) -> list[SourceEntry]:
    """Every registered source (of one role), in the order `--list-inputs` prints them."""
    _discover()
    return sorted((e for e in _ENTRIES.values() if role in (None, e.role)), key=lambda e: (e.role != "input", e.form))


def list_sources() -> str:
    """What `mke-live --list-inputs` prints: a line per source, under the option it goes with."""
    lines = []
    width = max(len(e.form) for e in registered_sources())
    for role, title in _TITLES.items():
        lines.append(title)
        lines += [f"  {e.describe(width)}" for e in registered_sources(role)]
    return "\n".join(lines)


def _known() -> str:
    entries = registered_sources()
    schemes = sorted({f"{s}://" for e in entries for s in e.schemes} | {"file://"})
    suffixes = sorted({s for e in entries for s in e.suffixes})
    return (f"known: {', '.join(schemes)}; files {', '.join(suffixes)} (as file://PATH or the bare path); "
            "mke-live --list-inputs shows each with its options")


def _entry_for(uri: SourceURI) -> SourceEntry:
    entries = registered_sources()
    if uri.scheme is None:
        for e in entries:
            if e.bare is not None and e.bare(uri.address):
                return e
    if uri.scheme in (None, "file"):
        for e in entries:
            if uri.suffix and uri.suffix in e.suffixes:
                return e
        what = f"'{uri.suffix}' files" if uri.suffix else "a file without a suffix"
        if uri.scheme is None and not uri.suffix:
            scheme = uri.address.lower().rstrip(":/")
            what = (f"this (did you mean '{scheme}://'?)" if any(scheme in e.schemes for e in entries)
                    else "this (no scheme://, no file suffix)")
        raise MkeError(f"{uri}: no source reads {what}; {_known()}")
    for e in entries:
        if uri.scheme in e.schemes:
            return e
    schemes = sorted({s for e in entries for s in e.schemes} | {"file"})
    close = difflib.get_close_matches(uri.scheme, schemes, n=1)
    hint = f" (did you mean '{close[0]}://'?)" if close else ""
    raise MkeError(f"{uri}: unknown source scheme '{uri.scheme}://'{hint}; {_known()}")


@dataclass(frozen=True)
class ResolvedSource:
    """A URI checked against its source's registration; `make(context)` builds the source (not opened)."""

    uri: SourceURI
    entry: SourceEntry
    options: Any

    def make(self, context: SourceContext):
        return self.entry.factory(self.options, context)


def resolve_source(text: str, role: str = "input") -> ResolvedSource:
    """The source a URI names, with its options parsed and checked: every mistake in it is found here,
    before a model is loaded or a device opened."""
    uri = parse_uri(text)
    entry = _entry_for(uri)
    if entry.role != role:
        gives = ", ".join(sorted(entry.modalities))
        raise MkeError(f"{uri} is {'an audio source' if entry.role == 'audio' else f'a source of frames ({gives})'}: "
                       f"give it with {ROLES[entry.role]}, not {ROLES[role]}")
    if entry.whole_uri:
        options = parse_options(entry.options, (), str(uri), entry.form, entry.target, uri.text)
    else:
        options = parse_options(entry.options, uri.query, str(uri), entry.form, entry.target, uri.address)
    return ResolvedSource(uri, entry, options)


def open_source(uri: str | ResolvedSource, context: SourceContext):
    """The `--input` source a URI names, built for this run; `open()` starts it."""
    return (uri if isinstance(uri, ResolvedSource) else resolve_source(uri, "input")).make(context)


def open_audio(uri: str | ResolvedSource, context: SourceContext):
    """The `--audio` stream a URI names, at the model's rate and channels; `open()` starts it."""
    return (uri if isinstance(uri, ResolvedSource) else resolve_source(uri, "audio")).make(context)
