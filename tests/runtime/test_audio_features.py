"""The numpy audio features against their references: librosa for the log-mel spectrogram and MFCC
(librosa.feature.melspectrogram + power_to_db, librosa.feature.mfcc), scipy for the DCT and the
polyphase resampling. librosa's first call compiles numba for ~30 s, so its references are computed once
per module.

Tolerances: both sides compute in float32, so the features differ by float32 rounding only —
~1e-7 relative in a band's power, i.e. ~1e-6 dB, more in bands far below a frame's loudest (the FFT's
rounding is relative to the whole frame): up to 5.4e-5 dB measured here, 2.3e-4 dB on other signals.
1e-3 dB (0.02 % in power) is above that and far below anything a model could tell apart; it holds
everywhere, top_db clipping included (clipping is continuous). MFCCs are sums of 40 such values (|c0|
reaches 632 for silence, where float32 spacing is 6e-5): 1e-3 absolute as well (2.5e-4 measured).
Filters and DCT matrices: 1e-6 absolute (they agree exactly, and to 7e-9). Resampling: 1e-5 against
scipy in float64 (2e-7 measured)."""
import numpy as np
import pytest

from mke.runtime.audio_features import (
    AUDIO_FEATURE_DEFAULTS, PASSBAND, STOPBAND_DB, dct_matrix, feature_params, feature_shape, log_mel,
    lowpass_filter, mel_filterbank, mfcc, resample, to_mono,
)
from mke.runtime.errors import MkeError

RATE = 16000
DB_TOLERANCE = 1e-3        # dB, log-mel against librosa
MFCC_TOLERANCE = 1e-3      # MFCC units (DCT of dB), against librosa
MATRIX_TOLERANCE = 1e-6    # mel filters and DCT matrices
RESAMPLE_TOLERANCE = 1e-5  # samples in −1..1: our float32 polyphase sums against scipy's float64 upfirdn


def chirp_and_noise(seconds=1.0, rate=RATE, seed=0):
    """A 100 Hz → 7 kHz linear sweep at 0.5 over a −40 dB white-noise floor."""
    t = np.arange(int(round(seconds * rate))) / rate
    sweep = 0.5 * np.sin(2 * np.pi * (100 * t + (7000 - 100) / (2 * seconds) * t ** 2))
    return (sweep + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def speech_like(seconds=1.0, rate=RATE):
    """A 120 Hz voice: harmonics weighted by three formants (500, 1500, 2500 Hz), in 4 Hz syllables
    separated by true silence."""
    t = np.arange(int(round(seconds * rate))) / rate
    harmonics = np.arange(120, rate / 2, 120)
    weights = sum(np.exp(-0.5 * ((harmonics - f) / 150) ** 2) for f in (500, 1500, 2500))
    voice = (weights[:, None] * np.sin(2 * np.pi * harmonics[:, None] * t)).sum(0)
    syllables = np.maximum(0.0, np.sin(2 * np.pi * 4 * t)) ** 2
    return (0.1 * voice * syllables).astype(np.float32)


SIGNALS = {
    "chirp_and_noise": chirp_and_noise(),
    "speech_like": speech_like(),
    "silence": np.zeros(RATE, np.float32),
    "shorter_than_window": chirp_and_noise(seconds=0.4),
}


def window(y, n=RATE):
    """The last n samples, zero-padded in front: what the features are computed on."""
    return y[-n:] if y.size >= n else np.concatenate([np.zeros(n - y.size, np.float32), y])


@pytest.fixture(scope="module")
def librosa():
    return pytest.importorskip("librosa", reason="librosa is the reference for the audio features: "
                                                 "pip install -e '.[dev]'")


@pytest.fixture(scope="module")
def scipy_signal():
    return pytest.importorskip("scipy.signal", reason="scipy is the reference for resampling: pip install -e '.[dev]'")


@pytest.fixture(scope="module")
def librosa_features(librosa):
    """name → (log-mel dB (64, frames), MFCC (40, frames)) of each 16 kHz mono signal's window, by librosa."""
    stft = {"sr": RATE, "n_fft": 512, "hop_length": 160, "win_length": 400}
    out = {}
    for name, y in SIGNALS.items():
        y = window(y)
        mel_db = librosa.power_to_db(librosa.feature.melspectrogram(y=y, n_mels=64, **stft))
        out[name] = mel_db, librosa.feature.mfcc(y=y, n_mfcc=40, n_mels=40, **stft)
    return out


# --- features against librosa ------------------------------------------------------------------------

@pytest.mark.parametrize("name", SIGNALS)
def test_log_mel_equals_librosa_melspectrogram_in_db(librosa_features, name):
    ours = log_mel(SIGNALS[name][None], {})
    assert ours.shape == (1, 64, 101) and ours.dtype == np.float32
    np.testing.assert_allclose(ours[0], librosa_features[name][0], rtol=0, atol=DB_TOLERANCE)


@pytest.mark.parametrize("name", SIGNALS)
def test_mfcc_equals_librosa_mfcc(librosa_features, name):
    ours = mfcc(SIGNALS[name][None], {})
    assert ours.shape == (1, 40, 101) and ours.dtype == np.float32
    np.testing.assert_allclose(ours[0], librosa_features[name][1], rtol=0, atol=MFCC_TOLERANCE)


def test_silence_is_the_power_floor():
    np.testing.assert_allclose(log_mel(np.zeros((1, RATE), np.float32), {}), -100.0, atol=1e-4)  # 10 · log10(1e-10)


def test_48k_stereo_is_downmixed_resampled_then_equals_librosa_on_the_result(librosa, scipy_signal):
    """The whole chain: the channel mean, resampled by the same filter through scipy, then librosa."""
    rng = np.random.default_rng(1)
    mono = chirp_and_noise(seconds=1.5, rate=48000)
    stereo = np.stack([mono + 0.05 * rng.standard_normal(mono.size), mono - 0.05 * rng.standard_normal(mono.size)])
    stereo = stereo.astype(np.float32)
    at_16k = scipy_signal.resample_poly(stereo.mean(0, dtype=np.float64), 1, 3, window=lowpass_filter(1, 3))  # up = 1
    expected = librosa.feature.mfcc(y=window(at_16k.astype(np.float32)), sr=RATE, n_mfcc=40, n_mels=40,
                                    n_fft=512, hop_length=160, win_length=400)
    np.testing.assert_allclose(mfcc(stereo, {}, rate=48000)[0], expected, rtol=0, atol=MFCC_TOLERANCE)


# --- constants against librosa and scipy ---------------------------------------------------------------

@pytest.mark.parametrize("rate, n_fft, n_mels, fmin, fmax", [
    (16000, 512, 40, 0.0, None), (16000, 512, 64, 0.0, None), (22050, 2048, 128, 30.0, 9000.0),
    (8000, 256, 23, 50.0, 3800.0),
])
def test_mel_filterbank_equals_librosa_filters_mel(librosa, rate, n_fft, n_mels, fmin, fmax):
    ours = mel_filterbank(rate, n_fft, n_mels, fmin, fmax)
    reference = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.shape == reference.shape == (n_mels, 1 + n_fft // 2) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, rtol=0, atol=MATRIX_TOLERANCE)


@pytest.mark.parametrize("n_mfcc, n_mels", [(40, 40), (13, 40), (20, 64)])
def test_dct_matrix_is_scipys_orthonormal_dct_ii(n_mfcc, n_mels):
    scipy_fft = pytest.importorskip("scipy.fft", reason="scipy is the reference for the DCT: pip install -e '.[dev]'")
    reference = scipy_fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc]
    np.testing.assert_allclose(dct_matrix(n_mfcc, n_mels), reference, rtol=0, atol=MATRIX_TOLERANCE)


def test_cached_constants_cannot_be_changed_by_a_caller():
    with pytest.raises(ValueError):
        mel_filterbank(16000, 512, 40)[0, 0] = 1.0


# --- resampling ----------------------------------------------------------------------------------------

def sweep_and_noise(rate, seconds=1.0, seed=2):
    """(2, T): a 50 Hz → 0.45 × rate sweep and white noise, the two channels of one signal."""
    t = np.arange(int(round(seconds * rate))) / rate
    sweep = 0.5 * np.sin(2 * np.pi * (50 * t + (0.45 * rate - 50) / (2 * seconds) * t ** 2))
    noise = 0.3 * np.random.default_rng(seed).standard_normal(t.size)
    return np.stack([sweep, noise]).astype(np.float32)


@pytest.mark.parametrize("rate_in, up, down", [(48000, 1, 3), (44100, 160, 441), (22050, 320, 441),
                                               (8000, 2, 1)])
def test_resample_equals_scipy_resample_poly_with_the_same_filter(scipy_signal, rate_in, up, down):
    x = sweep_and_noise(rate_in)
    ours = resample(x, rate_in, RATE)
    reference = scipy_signal.resample_poly(x.astype(np.float64), up, down, axis=1,
                                           window=lowpass_filter(up, down) / up)   # resample_poly multiplies by up
    assert ours.shape == (2, RATE) == reference.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, rtol=0, atol=RESAMPLE_TOLERANCE)


@pytest.mark.parametrize("up, down", [(1, 3), (160, 441), (2, 1)])
def test_the_resampling_filter_is_kaisers_design_by_scipy(scipy_signal, up, down):
    width = (1 - PASSBAND) / max(up, down)
    taps, beta = scipy_signal.kaiserord(STOPBAND_DB, width)
    taps += 1 - taps % 2                                                            # odd: a whole-sample delay
    reference = scipy_signal.firwin(taps, (1 + PASSBAND) / 2 / max(up, down), window=("kaiser", beta)) * up
    np.testing.assert_allclose(lowpass_filter(up, down), reference, rtol=0, atol=1e-12)


def tone(freq, rate, seconds=1.0):
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t))[None].astype(np.float32)


def gain_db(rate_in, freq, rate_out=RATE):
    """Output level over input level of a tone, away from the edges (where the filter sees the zeros)."""
    out = resample(tone(freq, rate_in), rate_in, rate_out)[0, 300:-300]
    return 20 * np.log10(np.sqrt(np.mean(np.square(out, dtype=np.float64))) / (0.5 / np.sqrt(2)))


@pytest.mark.parametrize("rate_in", [48000, 44100, 22050])
@pytest.mark.parametrize("freq", [8500, 9000, 10000])
def test_tones_above_the_new_nyquist_frequency_are_removed_not_aliased(rate_in, freq):
    assert gain_db(rate_in, freq) < -80                     # measured: −87 dB at 8.5 kHz, −94 … −104 dB above


@pytest.mark.parametrize("rate_in", [48000, 44100, 22050, 8000])
def test_tones_in_the_passband_keep_their_level(rate_in):
    for freq in (440, 3000, min(7000, 0.45 * rate_in)):
        assert abs(gain_db(rate_in, freq)) < 0.01


@pytest.mark.parametrize("n_in, rate_in, rate_out", [(1001, 44100, 16000), (1, 48000, 16000), (5, 8000, 16000),
                                                     (16000, 16000, 16000)])
def test_resampled_length_is_rounded(n_in, rate_in, rate_out):
    assert resample(np.zeros((3, n_in), np.float32), rate_in, rate_out).shape == (3, round(n_in * rate_out / rate_in))


def test_downmix_is_the_channel_mean():
    x = np.array([[1.0, 0.0, -1.0], [0.0, 0.5, 0.0]], np.float32)
    np.testing.assert_array_equal(to_mono(x), [[0.5, 0.25, -0.5]])


# --- windows, rates, channels and shapes ----------------------------------------------------------------

def test_the_window_is_the_last_seconds_zero_padded_in_front():
    clip = chirp_and_noise()
    longer = np.concatenate([np.random.default_rng(3).standard_normal(8000).astype(np.float32), clip])
    np.testing.assert_array_equal(mfcc(longer[None], {}), mfcc(clip[None], {}))
    short = clip[-6000:]
    np.testing.assert_array_equal(log_mel(short[None], {}), log_mel(window(short)[None], {}))


def test_a_long_recording_is_resampled_whole_then_windowed():
    """Only the window's samples are resampled, but they equal the full resampling's last second."""
    x = sweep_and_noise(44100, seconds=3.0)
    full = resample(to_mono(x), 44100, RATE)
    np.testing.assert_allclose(log_mel(x, {}, rate=44100), log_mel(full[:, -RATE:], {}), rtol=0, atol=1e-4)


@pytest.mark.parametrize("channels, rate", [(1, 16000), (2, 48000), (6, 44100), (1, 8000), (2, 22050), (1, 32000)])
def test_any_rate_and_channel_count_gives_the_spec_shape(channels, rate):
    x = np.random.default_rng(4).uniform(-0.5, 0.5, (channels, int(rate * 1.2))).astype(np.float32)
    for fn, features in ((mfcc, "mfcc"), (log_mel, "log_mel")):
        assert fn(x, {}, rate=rate).shape == feature_shape({"features": features})


@pytest.mark.parametrize("params", [{}, {"seconds": 0.5, "n_fft": 1024, "win_length": 1024, "hop_length": 256},
                                    {"n_fft": 511, "win_length": 300, "hop_length": 100},
                                    {"sample_rate": 8000, "seconds": 2.0, "n_mels": 30, "n_mfcc": 13}])
def test_feature_shape_predicts_the_output(params):
    x = np.zeros((1, 3000), np.float32)
    _, mfcc_bands, frames = feature_shape({**params, "features": "mfcc"})
    assert mfcc(x, params).shape == (1, mfcc_bands, frames)
    assert log_mel(x, params).shape == feature_shape({**params, "features": "log_mel"})


def test_default_shapes_and_completed_params():
    assert feature_shape({"features": "mfcc"}) == (1, 40, 101)
    assert feature_shape({"features": "log_mel"}) == (1, 64, 101)
    spec = feature_params({"kind": "audio", "features": "mfcc", "n_mfcc": 13})
    assert spec == {**AUDIO_FEATURE_DEFAULTS["mfcc"], "kind": "audio", "features": "mfcc", "n_mfcc": 13}


def test_mean_and_std_normalise_the_output():
    x = chirp_and_noise()[None]
    np.testing.assert_allclose(mfcc(x, {"mean": -20.0, "std": 5.0}), (mfcc(x, {}) + 20.0) / 5.0, rtol=1e-6, atol=1e-5)


# --- errors ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("samples, message", [
    (np.zeros(16000, np.float32), r"\(channels, samples\)"),
    (np.zeros((1, 0), np.float32), "empty"),
    (np.full((1, 100), np.nan, np.float32), "NaN or infinite"),
    (np.array([[0.0, np.inf]], np.float32), "NaN or infinite"),
    (np.zeros((1, 100), np.int16), "must be float"),
])
def test_bad_samples_are_named(samples, message):
    with pytest.raises(MkeError, match=message):
        mfcc(samples, {})


@pytest.mark.parametrize("params, message", [
    ({"n_mels": 0}, "'n_mels' must be an integer > 0, got 0"),
    ({"n_fft": 512.5}, "'n_fft' must be an integer"),
    ({"hop_length": "160"}, "'hop_length' must be an integer"),
    ({"sample_rate": -16000}, "'sample_rate' must be a finite number > 0"),
    ({"seconds": float("nan")}, "'seconds'"),
    ({"win_length": 1024}, "'win_length' \\(1024\\) must not exceed 'n_fft' \\(512\\)"),
    ({"fmin": 9000.0}, "'fmin' \\(9000 Hz\\) must lie below 'fmax' \\(8000 Hz\\)"),
    ({"fmax": 0.0}, "'fmax' must be a finite number > 0 or None"),
    ({"n_mfcc": 41}, "'n_mfcc' \\(41\\) must not exceed 'n_mels' \\(40\\)"),
    ({"top_db": -1.0}, "'top_db' must be a finite number >= 0 or None"),
    ({"std": 0.0}, "'std' must not be 0"),
])
def test_bad_parameters_are_named(params, message):
    with pytest.raises(MkeError, match=message):
        mfcc(np.zeros((1, 100), np.float32), params)


def test_bad_rates_and_feature_names_are_named():
    with pytest.raises(MkeError, match="input rate must be a positive number of Hz, got 0"):
        mfcc(np.zeros((1, 100), np.float32), {}, rate=0)
    with pytest.raises(MkeError, match="audio features 'mfccs' are not one of log_mel, mfcc"):
        feature_shape({"features": "mfccs"})
