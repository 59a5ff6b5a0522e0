"""The ``openai`` LLM backend: chat completions from any OpenAI-compatible server over HTTP (stdlib only).

Why stdlib ``urllib``: one server (``vllm serve``, llama.cpp ``llama-server``, a hosted API) is shared by
many Ray workers, so the client must be light, bounded (concurrency, timeouts) and retry what is transient.
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
from typing import Any, Sequence

from .llm import GenParams, LlmBackend, LlmError, as_prompt
from .prompts import Prompt


class OpenAiLlm(LlmBackend):
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
        p = as_prompt(prompt)
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
