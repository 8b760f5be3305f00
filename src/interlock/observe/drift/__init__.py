"""Drift detection: does live traffic still look like the reference?

The flow is data in, data out. `observe` reads one exchange's features (lengths, language,
PII rate, topic vector, finish reason, refusal, confidence, latency) into an `Observation`;
a `Profile` keeps one mergeable sketch per feature (DataSketches KLL for numbers, frequent items
for categories, a mean and a reservoir for embeddings) and serialises to one blob, so every
worker keeps its own live window and the windows merge through a shared store; `compare` runs
the two-sample tests per feature (KS and normalised Wasserstein, chi-square and Jensen-Shannon,
MMD) and returns a `DriftReport`, which renders as JSON (`to_dict`) or as a self-contained HTML
page (`to_html`). Nothing here does I/O except `Profile.from_jsonl` reading its file; the only
randomness (reservoir sampling, MMD permutations) comes from an injected generator or seed.
"""

from .compare import DriftConfig, compare
from .features import (
    FEATURES,
    FeatureKind,
    Observation,
    estimate_tokens,
    mean_logprob,
    observe,
    prompt_text,
    topic_text,
)
from .html import to_html
from .language import LanguageIdentifier
from .profile import Profile
from .refusal import REFUSAL_PHRASES, is_refusal
from .report import Check, DriftReport, FeatureResult, Status
from .sketch import CategorySketch, EmbeddingSketch, NumericSketch

__all__ = [
    "FEATURES",
    "REFUSAL_PHRASES",
    "CategorySketch",
    "Check",
    "DriftConfig",
    "DriftReport",
    "EmbeddingSketch",
    "FeatureKind",
    "FeatureResult",
    "LanguageIdentifier",
    "NumericSketch",
    "Observation",
    "Profile",
    "Status",
    "compare",
    "estimate_tokens",
    "is_refusal",
    "mean_logprob",
    "observe",
    "prompt_text",
    "to_html",
    "topic_text",
]
