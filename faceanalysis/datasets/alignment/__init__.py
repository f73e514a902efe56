"""Face-alignment datasets read from the releases' own files (FaRL's protocol, issue 4).

* :class:`IBUG300WDataset` - 300W, HRNet CSVs, 68 points, FaRL's -2 px offset.
* :class:`WFLWCSVDataset` - WFLW, HRNet CSVs, 98 points, six test subsets.
* :class:`AFLW19Dataset` - AFLW-19, ``AFLWinfo_release.mat``, 19 points, ``ra`` split.

Class names differ from mmpose's ``Face300WDataset`` / ``WFLWDataset`` / ``AFLWDataset`` (COCO JSON
readers), which stay usable next to ours: our DATASETS registry mirrors into mmpose's and refuses
duplicate names. Samples follow mmpose's top-down keys (:mod:`.base`).
"""
from .aflw19 import (AFLW19_FLIP_PAIRS, AFLW19_MAT_FIELDS, AFLW19_NAMES, AFLW19_SPLIT_SIZES,
                     AFLW19Dataset, read_aflw19_mat)
from .base import (ALIGNMENT_META_KEYS, FaceLandmarkDataset, flip_indices_from_pairs,
                   landmark_metainfo)
from .hrnet_csv import (HRNetCSVDataset, HRNetCSVRow, hrnet_box_xyxy, read_hrnet_csv,
                        write_hrnet_csv)
from .ibug300w import (IBUG300W_CSV_FILES, IBUG300W_FLIP_PAIRS, IBUG300W_QUIRK_PATHS,
                       IBUG300W_SPLIT_SIZES, IBUG300WDataset)
from .wflw import (WFLW_CSV_FILES, WFLW_FLIP_PAIRS, WFLW_SPLIT_SIZES, WFLW_SUBSETS,
                   WFLWCSVDataset)

__all__ = [
    'ALIGNMENT_META_KEYS', 'FaceLandmarkDataset', 'HRNetCSVDataset', 'IBUG300WDataset',
    'WFLWCSVDataset', 'AFLW19Dataset', 'HRNetCSVRow', 'read_hrnet_csv', 'write_hrnet_csv',
    'hrnet_box_xyxy', 'read_aflw19_mat', 'landmark_metainfo', 'flip_indices_from_pairs',
    'IBUG300W_SPLIT_SIZES', 'IBUG300W_CSV_FILES', 'IBUG300W_FLIP_PAIRS', 'IBUG300W_QUIRK_PATHS',
    'WFLW_SPLIT_SIZES', 'WFLW_SUBSETS', 'WFLW_CSV_FILES', 'WFLW_FLIP_PAIRS', 'AFLW19_SPLIT_SIZES',
    'AFLW19_FLIP_PAIRS', 'AFLW19_MAT_FIELDS', 'AFLW19_NAMES'
]
