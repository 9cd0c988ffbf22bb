"""Live and recorded sensor sources: RealSense RGB-D, camera, microphone. Torch-free."""
