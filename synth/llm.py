"""LLM backends behind one interface, ``generate(prompts, params) -> texts``, and bounded re-asking.

Backends: ``template`` (offline rules, no model: the demo), ``transformers`` (a local model folder, CPU or
GPU), ``vllm`` (offline ``vllm.LLM`` with JSON-schema guided decoding; GPU only, optional extra), ``openai``
(any OpenAI-compatible endpoint: ``vllm serve``, llama.cpp server, hosted APIs) and ``ray_data_llm_processor``
for cluster-scale batch inference with ``ray.data.llm``. Models always come from a local path.

Why ``generate_validated``: models sometimes answer with broken JSON. Each malformed reply is re-asked
(a new seed) at most ``attempts`` times; after that the item carries the raw text to the errors table.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Protocol, Sequence

from .prompts import RULES, ParseError, Prompt

VLLM_INSTALL = "pip install 'slmfactory[vllm]' (GPU machines only: vLLM pins its own torch and needs CUDA)"


class LlmError(RuntimeError):
    """An LLM backend that cannot run or answer, with the fix."""


@dataclass
class GenParams:
    max_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy (deterministic)
    top_p: float = 1.0
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None  # guided decoding where the backend supports it

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "GenParams":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise LlmError(f"unknown generation params {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


class LlmBackend(Protocol):
    name: str

    def generate(self, prompts: Sequence[Prompt], params: GenParams) -> list[str]: ...


def _as_prompt(p: Prompt | str) -> Prompt:
    return p if isinstance(p, Prompt) else Prompt("raw", str(p))


# --- template (offline rules) ------------------------------------------------------------------------
class TemplateLlm:
    """Rule-based answers to our own prompts, as JSON text: runs anywhere, deterministic, no model."""

    name = "template"
    model = "rules"

    def __init__(self, **_: Any):
        pass

    def generate(self, prompts: Sequence[Prompt | str], params: GenParams | None = None) -> list[str]:
        out = []
        for p in map(_as_prompt, prompts):
            rule = RULES.get(p.task)
            if rule is None:
                raise LlmError(f"the template backend has no rule for task {p.task!r}; use a model backend")
            out.append(json.dumps(rule(p.payload), ensure_ascii=False))
        return out


# --- transformers (local model) -----------------------------------------------------------------------
class TransformersLlm:
    """A causal LM from a local folder via ``transformers`` (CPU-capable; tests use a tiny random model)."""

    name = "transformers"

    def __init__(self, model_path: str, device: str = "cpu", dtype: str = "auto", batch_size: int = 8,
                 trust_remote_code: bool = False):
        if not model_path or not os.path.isdir(model_path):
            raise LlmError(f"transformers model_path {model_path!r} is not a local folder; give the folder with "
                           f"config.json, weights and tokenizer (we never download models)")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model_path
        self.tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True, trust_remote_code=trust_remote_code)
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token or self.tok.unk_token
        torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16,
                       "float16": torch.float16}[dtype]
        self.lm = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True, dtype=torch_dtype,
                                                       trust_remote_code=trust_remote_code).to(device).eval()
        self.device, self.batch_size = device, max(1, int(batch_size))
        self.stats = {"prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}

    def render(self, p: Prompt) -> str:
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template(p.messages(), tokenize=False, add_generation_prompt=True)
        sys_part = f"{p.system}\n\n" if p.system else ""
        return f"{sys_part}User: {p.user}\nAssistant:"

    def generate(self, prompts: Sequence[Prompt | str], params: GenParams | None = None) -> list[str]:
        import torch

        params = params or GenParams()
        texts = [self.render(_as_prompt(p)) for p in prompts]
        out: list[str] = []
        t0 = time.perf_counter()
        for i in range(0, len(texts), self.batch_size):
            chunk = texts[i:i + self.batch_size]
            enc = self.tok(chunk, return_tensors="pt", padding=True).to(self.device)
            torch.manual_seed(params.seed + i)  # same batch + seed -> same samples
            kw: dict[str, Any] = {"max_new_tokens": params.max_tokens, "pad_token_id": self.tok.pad_token_id}
            if params.temperature > 0:
                kw.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            else:
                kw.update(do_sample=False)
            with torch.inference_mode():
                gen = self.lm.generate(**enc, **kw)
            new = gen[:, enc["input_ids"].shape[1]:]
            self.stats["prompt_tokens"] += int(enc["attention_mask"].sum())
            self.stats["completion_tokens"] += int((new != self.tok.pad_token_id).sum())
            for row in self.tok.batch_decode(new, skip_special_tokens=True):
                out.append(_cut_at_stop(row, params.stop))
        self.stats["seconds"] += time.perf_counter() - t0
        return out


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    for s in stop:
        if s and s in text:
            text = text[: text.index(s)]
    return text


# --- vLLM offline -----------------------------------------------------------------------------------
def vllm_sampling_kwargs(params: GenParams) -> dict[str, Any]:
    """The ``vllm.SamplingParams`` keyword arguments for ``params`` (without the guided-decoding part)."""
    kw: dict[str, Any] = {"max_tokens": params.max_tokens, "temperature": params.temperature,
                          "top_p": params.top_p, "seed": params.seed}
    if params.stop:
        kw["stop"] = list(params.stop)
    return kw


def build_sampling_params(vllm: Any, params: GenParams) -> Any:
    """``SamplingParams`` with JSON-schema guided decoding, for old and new vLLM APIs.

    vLLM >= 0.10.2 spells it ``structured_outputs=StructuredOutputsParams(json=...)``; older releases
    ``guided_decoding=GuidedDecodingParams(json=...)``.
    """
    kw = vllm_sampling_kwargs(params)
    if params.json_schema is not None:
        sp_mod = getattr(vllm, "sampling_params", vllm)
        if hasattr(sp_mod, "StructuredOutputsParams"):
            kw["structured_outputs"] = sp_mod.StructuredOutputsParams(json=params.json_schema)
        elif hasattr(sp_mod, "GuidedDecodingParams"):
            kw["guided_decoding"] = sp_mod.GuidedDecodingParams(json=params.json_schema)
    return vllm.SamplingParams(**kw)


def _import_vllm() -> Any:
    try:
        import vllm  # type: ignore[import-not-found]
    except ImportError as e:
        raise LlmError(f"the vllm backend needs vLLM: {VLLM_INSTALL} ({e})") from e
    return vllm


class VllmLlm:
    """Offline ``vllm.LLM`` from a local model folder; one engine per GPU actor (``num_gpus: 1`` in the recipe)."""

    name = "vllm"

    def __init__(self, model_path: str, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = 4096, dtype: str = "auto", trust_remote_code: bool = False,
                 **engine_kwargs: Any):
        if not model_path or not os.path.isdir(model_path):
            raise LlmError(f"vllm model_path {model_path!r} is not a local folder (we never download models)")
        self.vllm = _import_vllm()
        self.model = model_path
        self.engine_kwargs = dict(model=model_path, tensor_parallel_size=tensor_parallel_size,
                                  gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                                  dtype=dtype, trust_remote_code=trust_remote_code, **engine_kwargs)
        self.llm = self.vllm.LLM(**self.engine_kwargs)

    def generate(self, prompts: Sequence[Prompt | str], params: GenParams | None = None) -> list[str]:
        params = params or GenParams()
        sp = build_sampling_params(self.vllm, params)
        conversations = [_as_prompt(p).messages() for p in prompts]
        outs = self.llm.chat(conversations, sp, use_tqdm=False)
        return [o.outputs[0].text if o.outputs else "" for o in outs]


# --- Ray Data LLM processor (cluster scale) -------------------------------------------------------------
def ray_data_llm_processor(model_path: str, params: GenParams | dict | None = None, concurrency: int = 1,
                           batch_size: int = 64, engine_kwargs: dict[str, Any] | None = None,
                           prompt_column: str = "prompt_messages", output_column: str = "llm_output") -> Any:
    """A ``ray.data.llm`` processor: ``ds = processor(ds)`` maps rows' chat messages to generated text.

    Rows carry ``prompt_column`` (a list of {role, content}); the output text lands in ``output_column``.
    Use it for datasets too large for one process; the recipes' stages use :class:`VllmLlm` per actor.
    """
    params = params if isinstance(params, GenParams) else GenParams.from_dict(params)
    try:
        from ray.data.llm import build_llm_processor, vLLMEngineProcessorConfig
    except ImportError as e:
        raise LlmError(f"ray.data.llm is unavailable ({e}); install `ray[llm]` and {VLLM_INSTALL}") from e
    config = vLLMEngineProcessorConfig(model_source=model_path, engine_kwargs=dict(engine_kwargs or {}),
                                       concurrency=concurrency, batch_size=batch_size)
    sampling = vllm_sampling_kwargs(params)
    if params.json_schema is not None:
        sampling["guided_decoding"] = {"json": params.json_schema}

    def pre(row: dict[str, Any]) -> dict[str, Any]:
        return dict(messages=row[prompt_column], sampling_params=sampling)

    def post(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, output_column: row.get("generated_text", "")}

    return build_llm_processor(config, preprocess=pre, postprocess=post)


# --- OpenAI-compatible HTTP --------------------------------------------------------------------------
class OpenAiLlm:
    """Chat completions over HTTP (stdlib urllib): concurrency limit, timeouts, retries with backoff.

    Retries on connection errors, timeouts, 408/409/429 and 5xx, waiting ``backoff * 2**attempt`` seconds
    (plus jitter, capped at ``max_backoff``); other 4xx fail at once with the server's message.
    The API key is read from the environment variable named by ``api_key_env`` (none needed for local servers).
    """

    name = "openai"
    RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}

    def __init__(self, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY", concurrency: int = 4,
                 timeout: float = 60.0, retries: int = 3, backoff: float = 0.5, max_backoff: float = 20.0,
                 json_mode: str = "json_schema"):
        self.url = base_url.rstrip("/") + ("" if base_url.rstrip("/").endswith("/chat/completions")
                                           else "/chat/completions")
        self.model = model
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.concurrency, self.timeout, self.retries = max(1, int(concurrency)), float(timeout), int(retries)
        self.backoff, self.max_backoff, self.json_mode = float(backoff), float(max_backoff), json_mode
        self._rng = random.Random(0)
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0}

    def request_body(self, prompt: Prompt | str, params: GenParams) -> dict[str, Any]:
        p = _as_prompt(prompt)
        body: dict[str, Any] = {"model": self.model, "messages": p.messages(), "max_tokens": params.max_tokens,
                                "temperature": params.temperature, "top_p": params.top_p, "seed": params.seed}
        if params.stop:
            body["stop"] = list(params.stop)
        schema = params.json_schema if params.json_schema is not None else p.schema
        if schema is not None and self.json_mode == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": p.task or "reply", "schema": schema}}
        elif schema is not None and self.json_mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def _post(self, body: dict[str, Any]) -> str:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            with self._lock:
                self.stats["requests"] += 1
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    reply = json.loads(resp.read().decode("utf-8"))
                return parse_chat_completion(reply)
            except urllib.error.HTTPError as e:
                detail = e.read().decode("utf-8", "replace")[:300]
                last = f"HTTP {e.code} from {self.url}: {detail}"
                if e.code not in self.RETRY_STATUS:
                    raise LlmError(last + " (not retried: fix the request, model name or API key)") from e
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = f"{type(e).__name__} talking to {self.url}: {getattr(e, 'reason', e)}"
            except (json.JSONDecodeError, KeyError, IndexError, TypeError) as e:
                last = f"unexpected response from {self.url}: {e}"
            if attempt < self.retries:
                with self._lock:
                    self.stats["retries"] += 1
                    jitter = self._rng.uniform(0, self.backoff)
                time.sleep(min(self.max_backoff, self.backoff * 2 ** attempt + jitter))
        raise LlmError(f"{last} (gave up after {self.retries + 1} attempts; check the server is up and "
                       f"raise timeout/retries if it is slow)")

    def generate(self, prompts: Sequence[Prompt | str], params: GenParams | None = None) -> list[str]:
        params = params or GenParams()
        bodies = [self.request_body(p, params) for p in prompts]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._post, bodies))


def parse_chat_completion(reply: dict[str, Any]) -> str:
    """The assistant text of an OpenAI chat-completions response (raises KeyError/IndexError when malformed)."""
    content = reply["choices"][0]["message"]["content"]
    return content if isinstance(content, str) else ""


# --- factory and validation loop ------------------------------------------------------------------------
BACKENDS: dict[str, Callable[..., Any]] = {"template": TemplateLlm, "transformers": TransformersLlm,
                                           "vllm": VllmLlm, "openai": OpenAiLlm}


def make_llm(backend: str = "template", **params: Any) -> LlmBackend:
    if backend not in BACKENDS:
        raise LlmError(f"unknown LLM backend {backend!r}; use one of {sorted(BACKENDS)}")
    return BACKENDS[backend](**params)


def model_name(llm: Any) -> str:
    return f"{getattr(llm, 'name', type(llm).__name__)}:{getattr(llm, 'model', '')}"


@dataclass
class Outcome:
    value: Any  # parsed reply, or None when every attempt failed
    raw: str  # the last raw reply
    error: str | None = None
    attempts: int = 1


def generate_validated(llm: LlmBackend, prompts: Sequence[Prompt], params: GenParams,
                       parse: Callable[[Prompt, str], Any], attempts: int = 3) -> list[Outcome]:
    """Generate, parse, and re-ask only the failures (seed + attempt) up to ``attempts`` times in total."""
    outcomes: list[Outcome | None] = [None] * len(prompts)
    todo = list(range(len(prompts)))
    for attempt in range(max(1, attempts)):
        if not todo:
            break
        p = replace(params, seed=params.seed + attempt)
        batch = [prompts[i] for i in todo]
        if p.json_schema is None and len({id(x.schema) for x in batch}) == 1:
            p = replace(p, json_schema=batch[0].schema)
        try:
            texts = llm.generate(batch, p)
        except LlmError as e:  # backend down: every item in this batch fails with the reason
            texts = [None] * len(batch)
            for i in todo:
                outcomes[i] = Outcome(None, "", str(e), attempt + 1)
            todo = []
            break
        failed = []
        for i, raw in zip(todo, texts):
            try:
                outcomes[i] = Outcome(parse(prompts[i], raw), raw, None, attempt + 1)
            except (ParseError, ValueError) as e:
                outcomes[i] = Outcome(None, raw, str(e), attempt + 1)
                failed.append(i)
        todo = failed
    return [o if o is not None else Outcome(None, "", "not generated") for o in outcomes]


def params_dict(params: GenParams) -> dict[str, Any]:
    return asdict(params)
