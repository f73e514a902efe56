"""High-level entry points (the top layer: imports only point down into models/converters)."""
from .face_aligner import FaceAligner
from .face_clip import FaceCLIP, load_face_clip
from .face_parser import FaceParser, box_to_matrix, init_face_parser

__all__ = ['FaceCLIP', 'load_face_clip', 'FaceAligner', 'FaceParser', 'box_to_matrix', 'init_face_parser']
