"""Dataset readers: NYU Depth V2 (labeled .mat, raw Kinect sequences) and manifests of users' own data.

They give raw numpy arrays and never import torch: rgb uint8 (H, W, 3) in RGB order, depth float32 in
metres with 0 = invalid (never NaN), labels uint8 (H, W) class ids with 255 = void / ignore.
Turning them into training tensors happens elsewhere.
"""
