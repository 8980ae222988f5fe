"""Data for visual classification: VTAB-1k split files, FGVC json splits, ImageFolder trees."""

from .datasets import ImageDataset, TaskData, build_task_data, task_num_classes
from .registry import FGVC_DATASETS, VTAB_GROUPS, VTAB_TASKS, vtab_task_name

__all__ = [
    "FGVC_DATASETS",
    "VTAB_GROUPS",
    "VTAB_TASKS",
    "ImageDataset",
    "TaskData",
    "build_task_data",
    "task_num_classes",
    "vtab_task_name",
]
