"""The GPU check (issue 18): one run on a machine with an NVIDIA GPU that measures what this project's
CPU machines cannot, and writes docs/gpu.md.

Run it as `bash scripts/gpu_check.sh` (it finds the Python whose torch sees the GPU and puts this
checkout on its path), which runs `python -m mke.export.gpu_check`. Each stage is a row of the table,
with its figure or the reason it has none:

1. data — the check's rendered rooms: from the cache, unpacked from the archive carried to a machine
   without pybullet (`--pack-data` makes it on a CPU machine), or rendered where pybullet is;
2. training — `mke-train --task rgbd` on CUDA with `precision: auto` (bf16 autocast where the GPU runs
   it natively, else fp16 with a GradScaler): samples/s of the teacher and of the MM student;
3. the MM student's PyTorch CUDA FP16 latency, batch 1, at 160×120 and 480×640 (`mke.runtime.timing`);
4. `mke-export --fp16 --int8` of that run: its ONNX checks (ONNX Runtime on the CPU) and, where
   TensorRT is, FP16 and INT8 engines held to mke-export's own tolerances against PyTorch and compared
   with ONNX Runtime here (`verify_engine`);
5. `mke-live --benchmark` on the student's engines (TensorRT, pycuda, and pybullet for `sim://`) and on
   its FP16 ONNX with ONNX Runtime's CUDA provider (onnxruntime-gpu).

Nothing is installed or fetched: a stage whose package or hardware is absent is a row saying so.
Modules: `plan` (what the check runs), `machine` (what the machine has), `rooms` (its data),
`context` (rows, the budget, subprocesses), `training` (2, 3), `engines` (4, 5), `report` (the page),
`__main__` (the command).
"""
