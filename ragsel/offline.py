"""Offline operation: ragsel never reaches for a model hub or sends telemetry at run time.

:data:`OFFLINE_ENV` is the environment that makes the libraries ragsel drives (Hugging Face
hub, transformers, tokenizers, chroma, ragas) stay offline and quiet; :func:`set_offline_env`
applies it without overriding what the user set. The CLI calls it at start-up; worker
processes (the eval runner's Ray workers) receive it in their environment.
"""

from __future__ import annotations

import os

OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "RAGAS_DO_NOT_TRACK": "true",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


def set_offline_env() -> None:
    """Set every :data:`OFFLINE_ENV` variable the user has not set (a hub lookup would hang
    offline, then fail)."""
    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)
