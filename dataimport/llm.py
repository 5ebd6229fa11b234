"""A small client for any OpenAI-compatible chat-completions endpoint (JSON answers only).

One call, one `Completion` or one classified `LlmError`: the caller records either as a step
and never has to tell httpx's exceptions apart. The deadline covers the whole call (connect,
a server that trickles bytes, the body), not just each socket read.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

TIMEOUT = "timeout"
HTTP_ERROR = "http_error"
MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Completion:
    content: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: int


class LlmError(Exception):
    """A failed call: `outcome` is timeout, http_error or malformed; never quotes the answer."""

    def __init__(self, outcome: str, message: str, latency_ms: int) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.latency_ms = latency_ms


@dataclass(frozen=True, slots=True)
class ChatClient:
    base_url: str
    model: str
    api_key: str | None
    timeout_seconds: float
    transport: httpx.AsyncBaseTransport | None = None

    async def complete_json(self, system: str, user: str) -> Completion:
        """Ask for a JSON object answer; temperature 0 so the same input gives the same advice."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_seconds):
                body = await self._post(system, user)
        except (TimeoutError, httpx.TimeoutException):
            message = f"no answer within {self.timeout_seconds:g}s"
            raise LlmError(TIMEOUT, message, _ms(started)) from None
        except httpx.HTTPStatusError as error:
            status = error.response.status_code
            raise LlmError(HTTP_ERROR, f"HTTP {status}", _ms(started)) from None
        except httpx.HTTPError as error:
            raise LlmError(HTTP_ERROR, type(error).__name__, _ms(started)) from None
        except ValueError:  # the body is not JSON
            raise LlmError(MALFORMED, "response body is not JSON", _ms(started)) from None
        return _completion(body, self.model, _ms(started))

    async def _post(self, system: str, user: str) -> Any:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        payload = {
            "model": self.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
        }
        timeout = httpx.Timeout(self.timeout_seconds)
        async with httpx.AsyncClient(timeout=timeout, transport=self.transport) as client:
            response = await client.post(self._url(), json=payload, headers=headers)
            response.raise_for_status()
            return response.json()

    def _url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def _completion(body: Any, model: str, latency_ms: int) -> Completion:
    """The first choice's content and the token usage, or MALFORMED for any other shape."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LlmError(MALFORMED, "no choices[0].message.content", latency_ms) from None
    if not isinstance(content, str):
        raise LlmError(MALFORMED, "message content is not text", latency_ms)
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return Completion(
        content=content,
        model=str(body.get("model") or model),
        input_tokens=_int_or_none(usage.get("prompt_tokens")),
        output_tokens=_int_or_none(usage.get("completion_tokens")),
        latency_ms=latency_ms,
    )


def parse_json_object(content: str) -> dict[str, Any]:
    """The answer as a JSON object; a fenced ```json block is accepted (some models add one)."""
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError("answer is not JSON") from None
    if not isinstance(value, dict):
        raise ValueError("answer is not a JSON object")
    return value


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
