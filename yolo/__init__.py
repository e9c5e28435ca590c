"""YOLOv3 on Pascal VOC: model, targets, loss, data, training, detection and GradCAM.

Nothing here imports streamlit; every module is importable without side effects.
"""

__version__ = "0.1.0"
