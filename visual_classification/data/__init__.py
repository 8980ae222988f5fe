"""Data for visual classification: VTAB-1k split files, FGVC json splits, ImageFolder trees (see ``layouts/``)."""

from .datasets import ImageDataset, TaskData, build_task_data, load_rgb, task_layout, task_num_classes
from .layouts import LAYOUTS, Layout, get_layout
from .registry import FGVC_DATASETS, VTAB_GROUPS, VTAB_TASKS, vtab_task_name

__all__ = [
    "FGVC_DATASETS",
    "LAYOUTS",
    "VTAB_GROUPS",
    "VTAB_TASKS",
    "ImageDataset",
    "Layout",
    "TaskData",
    "build_task_data",
    "get_layout",
    "load_rgb",
    "task_layout",
    "task_num_classes",
    "vtab_task_name",
]
