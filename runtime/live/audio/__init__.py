"""Audio beside the frames: a microphone through sounddevice, or a WAV file; the window that ends at each frame."""
