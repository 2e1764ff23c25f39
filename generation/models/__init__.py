"""The generation app's models, one module per part of the design; Django and every caller import
them from here."""

from generation.models.catalog import Collection, Dataset, DatasetKind, DatasetOrigin, DatasetPurpose, Example
from generation.models.evaluation import EvaluationItem, EvaluationRun, PromptFormat, RunStatus
from generation.models.jobs import Job, JobKind, JobStatus
from generation.models.pipeline import Candidate, CandidateDecision, GenerationMethod, GenerationRun

__all__ = [
    "Collection",
    "DatasetKind",
    "DatasetOrigin",
    "DatasetPurpose",
    "Dataset",
    "Example",
    "JobKind",
    "JobStatus",
    "Job",
    "PromptFormat",
    "RunStatus",
    "EvaluationRun",
    "EvaluationItem",
    "GenerationMethod",
    "GenerationRun",
    "CandidateDecision",
    "Candidate",
]
