"""Spoken words from eSpeak NG, for the built-in audio-visual data (`builtin_av`).

The library comes from the `espeakng-loader` wheel (the `train` extra): libespeak-ng 1.52 and its
voice data inside a pip package, driven here through ctypes with the classic `speak_lib.h` API
(espeak_Initialize in AUDIO_OUTPUT_SYNCHRONOUS mode, a synth callback collecting the samples,
espeak_SetVoiceByName, espeak_SetParameter, espeak_Synth). Chosen over Debian's `espeak-ng`
command because it needs no root and no system package, every machine with the same wheel has
the same engine (so the same waveforms), and a word costs about 1 ms instead of a process start
and a WAV file.

Determinism. libespeak-ng keeps state from one utterance to the next (the same words said in
another order come out different, even after espeak_Terminate and a new espeak_Initialize), so a
word's samples depend on what the process said before; voice variants with `breath` noise or the
Klatt synthesiser also draw noise that differs from run to run. Hence
`synthesize` says a whole list, in list order, in one freshly started process, and the voices
used are variants without breath or Klatt (`DETERMINISTIC_VARIANTS`): the same list gives the
same samples, run after run.

Audio comes back as float32 in −1..1 at the engine's rate (22050 Hz), leading and trailing
silence trimmed.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable

import numpy as np

from mke.runtime.errors import MkeError

# Variants of espeak-ng-data/voices/!v with neither `breath` nor `klatt`: reproducible (see above).
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Andy", "Lee", "travis", "antonio")
FEMALE_VARIANTS = ("f1", "f4", "Annie", "anika", "aunty", "belinda", "linda", "steph", "steph2", "steph3", "Andrea",
                   "grandma")
DETERMINISTIC_VARIANTS = MALE_VARIANTS + FEMALE_VARIANTS
ENGLISH_ACCENTS = ("en", "en-us", "en-gb-x-rp", "en-029", "en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan",
                   "en-gb-x-gbcwmd")

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER
_SILENCE_LEVEL = 1e-3  # of full scale: quieter samples at either end are trimmed


@dataclass(frozen=True)
class Voice:
    """One speaker's eSpeak settings: accent (an eSpeak language voice), variant, speed and pitch."""

    accent: str = "en"
    variant: str = "m1"
    rate_wpm: int = 175   # eSpeak accepts 80..450 words a minute
    pitch: int = 50       # base pitch, 0..100 (50 = the voice's normal)
    pitch_range: int = 50  # intonation, 0 (monotone)..100

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}" if self.variant else self.accent


@dataclass(frozen=True)
class Utterance:
    text: str
    voice: Voice


def engine_version() -> str:
    """The espeakng-loader wheel's version (it fixes the engine and the voices), or "" without it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("espeakng-loader")
    except PackageNotFoundError:
        return ""


class _Engine:
    """libespeak-ng in this process: one instance a process (the library is a singleton)."""

    _callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError:
            raise MkeError("speech synthesis needs the espeakng-loader package (libespeak-ng and its voices): "
                           "pip install espeakng-loader, or install mke-edge[train]") from None
        from pathlib import Path

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        data_parent = str(Path(espeakng_loader.get_data_path()).parent)  # the folder holding espeak-ng-data/
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent.encode(), 0)
        if self.rate <= 0:
            raise MkeError(f"libespeak-ng could not start with its data in {data_parent} (returned {self.rate}); "
                           "reinstall espeakng-loader")
        self._chunks: list[np.ndarray] = []
        self._callback = self._callback_type(self._collect)  # kept alive as long as the engine
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib
        self._voice: str | None = None

    def _collect(self, wav, n, _events) -> int:
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def say(self, utterance: Utterance) -> np.ndarray:
        v = utterance.voice
        if v.name != self._voice:
            if self._lib.espeak_SetVoiceByName(v.name.encode()) != 0:
                raise MkeError(f"eSpeak NG has no voice {v.name!r}; use an accent such as "
                               f"{', '.join(ENGLISH_ACCENTS[:4])} and a variant such as "
                               f"{', '.join(DETERMINISTIC_VARIANTS[:4])}")
            self._voice = v.name
        for param, value in ((_RATE, v.rate_wpm), (_PITCH, v.pitch), (_RANGE, v.pitch_range)):
            self._lib.espeak_SetParameter(param, int(value), 0)
        text = utterance.text.encode()
        self._chunks = []
        status = self._lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise MkeError(f"eSpeak NG failed on {utterance.text!r} with voice {v.name} (error {status})")
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return _trim(samples.astype(np.float32) / 32768.0)


def _trim(x: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x) > _SILENCE_LEVEL)
    return x[loud[0]:loud[-1] + 1].copy() if loud.size else x[:0].copy()


def _say_all(utterances: list[Utterance]) -> tuple[list[np.ndarray], int]:
    engine = _Engine()
    return [engine.say(u) for u in utterances], engine.rate


def synthesize(utterances: list[Utterance], fresh_process: bool = True,
               on_progress: Callable[[int], None] | None = None) -> tuple[list[np.ndarray], int]:
    """Each utterance as float32 samples in −1..1, and the sample rate in Hz (22050).

    `fresh_process` (the default) says the list in a newly started interpreter, so the result
    depends on the list alone; without it the samples also depend on what this process said before.
    (A subprocess, not a multiprocessing spawn, which would re-run a caller's unguarded script.)
    `on_progress(n)` is called as each further n utterances are done."""
    utterances = list(utterances)
    if not fresh_process:
        clips, rate = _say_all(utterances)
        if on_progress:
            on_progress(len(clips))
        return clips, rate
    import json
    import subprocess
    import sys
    import tempfile
    from dataclasses import asdict
    from pathlib import Path

    request = json.dumps([{"text": u.text, "voice": asdict(u.voice)} for u in utterances])
    with tempfile.TemporaryDirectory(prefix="mke-speech-") as tmp:
        out = Path(tmp) / "speech.npz"
        with open(Path(tmp) / "stderr.txt", "w+") as err:
            proc = subprocess.Popen([sys.executable, "-m", __name__, str(out)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err, text=True)
            proc.stdin.write(request)
            proc.stdin.close()
            for line in proc.stdout:  # one line per _PROGRESS_EVERY utterances
                if on_progress and line.strip().isdigit():
                    on_progress(int(line))
            status = proc.wait()
            err.seek(0)
            lines = err.read().strip().splitlines()
        if status != 0:
            raise MkeError(f"speech synthesis failed: {(lines or [f'exit status {status}'])[-1]}")
        with np.load(out) as z:
            samples, lengths, rate = z["samples"], z["lengths"], int(z["rate"])
    ends = np.cumsum(lengths)
    return [samples[e - n:e].copy() for e, n in zip(ends, lengths)], rate


_PROGRESS_EVERY = 64


def _main(out_path: str) -> None:
    """Child side of `synthesize`: JSON requests on stdin, an .npz of the samples at `out_path`,
    progress (utterances done since the last line) on stdout."""
    import json
    import sys

    requests = json.load(sys.stdin)
    clips = []
    try:
        engine = _Engine()
        for i, r in enumerate(requests):
            clips.append(engine.say(Utterance(r["text"], Voice(**r["voice"]))))
            if (i + 1) % _PROGRESS_EVERY == 0 or i + 1 == len(requests):
                print((i % _PROGRESS_EVERY) + 1, flush=True)
    except MkeError as exc:
        print(f"MkeError: {exc}", file=sys.stderr)
        sys.exit(2)
    lengths = np.array([len(c) for c in clips], np.int64)
    samples = np.concatenate(clips) if clips else np.zeros(0, np.float32)
    np.savez(out_path, samples=samples.astype(np.float32), lengths=lengths, rate=np.int64(engine.rate))


if __name__ == "__main__":
    import sys

    _main(sys.argv[1])
