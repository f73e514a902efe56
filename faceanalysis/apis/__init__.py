"""High-level entry points (the top layer: imports only point down into models/converters)."""
from .face_aligner import FaceAligner
from .face_clip import FaceCLIP, load_face_clip

__all__ = ['FaceCLIP', 'load_face_clip', 'FaceAligner']
