"""Camera: the :class:`~nora_ros.camera.frame.Frame` type, frame sources (device, video file,
image folder) and preprocessing to the model's 224x224 input.

May import the package root (errors, clock, actions) only: everything downstream reads frames.
"""
