"""Local causal LM through transformers: chat generation, token log-probs and perplexity.

Loads a Hugging Face folder or a GGUF file (``AutoModelForCausalLM.from_pretrained(folder,
gguf_file=name)``, dequantised to float32) lazily on first use. Dequantising a GGUF file is
slow (tens of seconds even for 135M parameters), so the converted model is saved once to
``$RAGSEL_MODEL_CACHE_DIR`` (default ``~/.cache/ragsel/gguf-converted``) and later loads take
about a second; pass ``convert_cache=False`` to skip that.

Loaded models are shared (a documented process-wide cache, :func:`clear_model_cache`):
instances that differ only in generation settings (temperature, max_tokens...) use one copy of
the weights. One generation runs at a time per model (a lock: CPU inference does not gain
from interleaving). ``threads`` sets torch's CPU threads, which is process-wide in torch.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ragsel.backends.llm.base import BaseLLM, Completion, ContextLengthError, GenParams
from ragsel.backends.llm.local_models import LocalModel, resolve_local_model
from ragsel.errors import BackendError, require

log = logging.getLogger("ragsel.llm")
ENV_MODEL_CACHE_DIR = "RAGSEL_MODEL_CACHE_DIR"


#: (folder, gguf file, device) -> (model, tokenizer, generation lock)
_MODELS: dict[tuple[str, str | None, str], tuple[Any, Any, threading.Lock]] = {}
_MODEL_LOCKS: dict[tuple[str, str | None, str], threading.Lock] = {}
_MODELS_LOCK = threading.Lock()


def clear_model_cache() -> None:
    """Drop the shared loaded models (instances holding one keep it until closed)."""
    with _MODELS_LOCK:
        _MODELS.clear()


def converted_cache_dir() -> Path:
    env = os.environ.get(ENV_MODEL_CACHE_DIR)
    return Path(env) if env else Path.home() / ".cache" / "ragsel" / "gguf-converted"


class TransformersLLM(BaseLLM):
    """A local causal LM (chat template, greedy or sampled decoding, logprobs, perplexity).

    ``TransformersLLM(model="smollm2", max_tokens=32).complete("Name a colour")``;
    ``TransformersLLM(model="/models/qwen2.5-0.5b-instruct")`` (a HF folder);
    ``llm.score_perplexity(["some text", ...])`` for the perplexity filter.
    """

    backend = "transformers"

    def __init__(
        self,
        *,
        model: str,
        gguf_file: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 256,
        seed: int | None = None,
        top_logprobs: int = 5,
        threads: int | None = None,
        device: str = "cpu",
        context_window: int | None = None,
        convert_cache: bool = True,
    ) -> None:
        super().__init__(temperature=temperature, max_tokens=max_tokens)
        self.local: LocalModel = resolve_local_model(model, gguf_file)
        self.model = self.local.label
        self.name = f"transformers:{self.local.label}"
        self.seed, self.top_logprobs = seed, top_logprobs
        self.threads, self.device = threads, device
        self._context_window = context_window
        self.convert_cache = convert_cache
        self._model: Any = None
        self._tokenizer: Any = None
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()

    def cache_identity(self) -> dict[str, Any]:
        gguf = self.local.gguf_path
        size = gguf.stat().st_size if gguf is not None and gguf.exists() else None
        return {
            "backend": self.backend,
            "model": self.model,
            "gguf_size": size,
            "seed": self.seed,
            "top_logprobs": self.top_logprobs,
        }

    # --- loading ------------------------------------------------------------------------
    def _converted_path(self) -> Path | None:
        gguf = self.local.gguf_path
        if gguf is None or not self.convert_cache:
            return None
        st = gguf.stat()
        return converted_cache_dir() / f"{gguf.stem}-{st.st_size}-{st.st_mtime_ns}"

    def warm_up(self) -> None:
        self._load()

    def _load(self) -> tuple[Any, Any]:
        with self._load_lock:
            if self._model is None:
                key = (str(self.local.folder), self.local.gguf_file, self.device)
                with _MODELS_LOCK:
                    key_lock = _MODEL_LOCKS.setdefault(key, threading.Lock())
                with key_lock:  # two instances of one model load it once
                    with _MODELS_LOCK:
                        entry = _MODELS.get(key)
                    if entry is None:
                        model, tok = self._load_weights()
                        entry = (model, tok, threading.Lock())
                        with _MODELS_LOCK:
                            _MODELS[key] = entry
                if self.threads:
                    require("torch", "llm").set_num_threads(self.threads)
                self._model, self._tokenizer, self._gen_lock = entry
            return self._model, self._tokenizer

    def _load_weights(self) -> tuple[Any, Any]:
        torch = require("torch", "llm", "the transformers LLM backend")
        transformers = require("transformers", "llm", "the transformers LLM backend")
        t0 = time.perf_counter()
        converted = self._converted_path()
        if converted is not None and (converted / "config.json").is_file():
            src, kw = str(converted), {}
        elif self.local.gguf_file:
            require("gguf", "llm", "loading GGUF files with transformers")
            src, kw = str(self.local.folder), {"gguf_file": self.local.gguf_file}
        else:
            src, kw = str(self.local.folder), {}
        try:
            tok = transformers.AutoTokenizer.from_pretrained(src, **kw)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                src, dtype=torch.float32, **kw
            )
        except (OSError, ValueError) as exc:
            raise BackendError(
                f"cannot load the model from {src}: {exc}", backend=self.name
            ) from exc
        model.to(self.device).eval()
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        log.info("%s loaded in %.1fs from %s", self.name, time.perf_counter() - t0, src)
        if converted is not None and kw:
            _save_converted(model, tok, converted)
        return model, tok

    @property
    def context_window(self) -> int | None:  # type: ignore[override]
        if self._context_window is not None:
            return self._context_window
        model, _ = self._load()  # asked right before prompting: the model is needed anyway
        return int(getattr(model.config, "max_position_embeddings", 0) or 0) or None

    def count_tokens(self, text: str) -> int:
        _, tok = self._load()
        return len(tok(text, add_special_tokens=False)["input_ids"])

    # --- generation ---------------------------------------------------------------------
    def _prompt_ids(self, messages: list[dict[str, str]]) -> Any:
        model, tok = self._load()
        if getattr(tok, "chat_template", None):
            enc = tok.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            return enc["input_ids"]
        text = "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"
        return tok(text, return_tensors="pt")["input_ids"]

    def _generate(self, messages: list[dict[str, str]], params: GenParams) -> Completion:
        torch = require("torch", "llm")
        model, tok = self._load()
        t0 = time.perf_counter()
        ids = self._prompt_ids(messages).to(self.device)
        n_in = int(ids.shape[1])
        max_new = params.max_tokens
        ctx = self.context_window
        if ctx is not None:
            if n_in >= ctx:
                raise ContextLengthError(
                    f"the prompt has {n_in} tokens but the model's context is {ctx}: shorten "
                    "the evidence (stages truncate chunks) or use a longer-context model",
                    backend=self.name,
                )
            max_new = min(max_new, ctx - n_in)
        gen: dict[str, Any] = {
            "max_new_tokens": max_new,
            "attention_mask": torch.ones_like(ids),
            "pad_token_id": tok.pad_token_id,
            "return_dict_in_generate": True,
            "output_logits": bool(params.logprobs),
        }
        if params.temperature > 0:
            gen.update(do_sample=True, temperature=params.temperature, top_p=1.0, top_k=0)
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self._gen_lock, torch.inference_mode():
            if params.temperature > 0:  # torch's RNG is global: seeded under the lock
                torch.manual_seed(0 if self.seed is None else self.seed)
            out = model.generate(ids, **gen)
        new = out.sequences[0, n_in:]
        eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()
        eos |= set(_as_list(getattr(model.generation_config, "eos_token_id", None)))
        finished = bool(len(new)) and int(new[-1]) in eos
        logprobs = None
        if params.logprobs and getattr(out, "logits", None):
            logprobs = self._token_logprobs(out.logits, new, tok)
        return Completion(
            text=tok.decode(new, skip_special_tokens=True).strip(),
            model=self.model,
            prompt_tokens=n_in,
            completion_tokens=int(len(new)),
            latency_ms=(time.perf_counter() - t0) * 1000,
            logprobs=logprobs,
            finish_reason="stop" if finished else "length",
        )

    def _token_logprobs(self, logits: Any, new: Any, tok: Any) -> list[dict[str, Any]]:
        torch = require("torch", "llm")
        rows = []
        for step, token_id in enumerate(new.tolist()):
            lp = torch.log_softmax(logits[step][0].float(), dim=-1)
            top = torch.topk(lp, k=max(1, self.top_logprobs))
            rows.append(
                {
                    "token": tok.decode([token_id]),
                    "logprob": float(lp[token_id]),
                    "top": {
                        tok.decode([int(i)]): float(v)
                        for v, i in zip(top.values.tolist(), top.indices.tolist())
                    },
                }
            )
        return rows

    # --- scoring ------------------------------------------------------------------------
    def token_logprobs(
        self, texts: list[str], *, batch_size: int = 8, max_length: int | None = None
    ) -> list[list[tuple[str, float]]]:
        """Log-probability of every token of each text given the tokens before it (the first
        token is conditioned on BOS/EOS). Texts longer than ``max_length`` (default: the
        context window) are truncated."""
        torch = require("torch", "llm")
        model, tok = self._load()
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        limit = (max_length or self.context_window or 2048) - 1
        seqs = [[start, *tok(t, add_special_tokens=False)["input_ids"][:limit]] for t in texts]
        results: list[list[tuple[str, float]]] = []
        for b in range(0, len(seqs), batch_size):
            batch = seqs[b : b + batch_size]
            width = max(len(s) for s in batch)
            ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, s in enumerate(batch):
                ids[i, : len(s)] = torch.tensor(s)
                mask[i, : len(s)] = 1
            with self._gen_lock, torch.inference_mode():
                logits = model(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
                ).logits.float()
            lp = torch.log_softmax(logits[:, :-1], dim=-1)
            picked = lp.gather(2, ids[:, 1:].unsqueeze(-1).to(lp.device)).squeeze(-1)
            for i, s in enumerate(batch):
                results.append(
                    [
                        (tok.decode([t]), float(v))
                        for t, v in zip(s[1:], picked[i, : len(s) - 1].tolist())
                    ]
                )
        return results

    def score_perplexity(
        self, texts: list[str], *, batch_size: int = 8, max_length: int | None = None
    ) -> list[float]:
        """Perplexity ``exp(mean negative log-likelihood per token)`` of each text (an empty
        text scores ``nan``)."""
        out = []
        for toks in self.token_logprobs(list(texts), batch_size=batch_size, max_length=max_length):
            out.append(math.exp(-sum(v for _, v in toks) / len(toks)) if toks else math.nan)
        return out

    def close(self) -> None:
        with self._load_lock:
            self._model = self._tokenizer = None


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def _save_converted(model: Any, tok: Any, target: Path) -> None:
    """Save the dequantised float32 model as a plain HF folder; atomic, so a reader never sees
    half a folder. transformers refuses ``save_pretrained`` on GGUF-loaded models (it keeps a
    quantizer attached although the weights are already dequantised), so config and weights
    are written directly."""
    import copy

    try:
        from safetensors.torch import save_model

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        try:
            config = copy.deepcopy(model.config)
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            config.save_pretrained(tmp)
            model.generation_config.save_pretrained(tmp)
            save_model(model, str(tmp / "model.safetensors"))  # handles tied embeddings
            tok.save_pretrained(tmp)
            os.replace(tmp, target)
        finally:
            if tmp.exists():  # failed, or another process won the race
                shutil.rmtree(tmp, ignore_errors=True)
    except Exception as exc:  # noqa: BLE001 - the model loaded fine; caching is optional
        log.warning("could not cache the converted model at %s: %s", target, exc)
