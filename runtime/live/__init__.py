"""`mke-live`: sensors → the model's own preprocessing → an inference backend → overlay, files, stats.

    sources/   where frames come from: RealSense (live or a recording), OpenCV camera or video file, the
               simulator; each says which modalities it gives and whether it is live (paced by a device)
    audio/     the microphone ring buffer and WAV files; the window of audio ending at each frame
    inputs     the model spec → which modalities it needs, and each frame → the model's input arrays
    backends/  ONNX Runtime and TensorRT behind one small Runner interface
    pipeline   a capture thread and an inference thread (newest frame wins), an output thread for sinks
    sinks/     overlay window, annotated video, predictions JSONL
    stats      FPS, latency percentiles, drops, memory; the --stats-json summary
    faults     fault injection (zero / NaN depth, dropped frames, audio underruns, a lost device)
    benchmark  end-to-end throughput against model-only throughput, side by side

Nothing here imports torch: the robot has none.
"""
