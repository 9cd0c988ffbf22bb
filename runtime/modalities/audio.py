"""The kinds that read the frame's audio, float32 (channels, samples) in −1..1 at the model's rate:

- `audio`: the waveform, (C, n) = the last `seconds` at `sample_rate` Hz (`preprocess_audio`);
- `mfcc`, `log_mel`: (1, bands, frames) features of the mono downmix (`mke.runtime.audio_features`),
  computed in numpy because TensorRT on a Jetson cannot parse an ONNX STFT.

The model input's first dimension after the batch is the channel count the audio stream must give
(`mke.runtime.live.inputs.audio_params`); `sample_rate` and `seconds` set its rate and window.
"""
from mke.runtime import audio_features
from mke.runtime.modalities.registry import register_modality
from mke.runtime.preprocess import WAVEFORM_DEFAULTS, preprocess_audio, waveform_samples

HINT = "add --audio mic:// or --audio file://X.wav"

register_modality("audio", field="audio", shape=lambda params: (-1, waveform_samples(params)), layout="NCT",
                  defaults=WAVEFORM_DEFAULTS, hint=HINT)(preprocess_audio)



def _register_features(features: str) -> None:
    register_modality(features, field="audio", layout="NCHW", hint=HINT,
                      shape=lambda params: audio_features.feature_shape({**params, "features": features}),
                      defaults=audio_features.AUDIO_FEATURE_DEFAULTS[features])(getattr(audio_features, features))


_register_features("mfcc")
_register_features("log_mel")
