"""Questions the bench puts to the operator through the panel: the bench's thread waits (Ctrl-C
and the page's abort still reach it) until a valid answer comes; an invalid one is refused with
its reason and the question stays open."""
from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bench.operator.events import ANSWER, PROMPT, EventStream
from bench.operator.inspection_form import InvalidAnswer

T = TypeVar("T")


@dataclass
class _Open(Generic[T]):
    read: Callable[[Mapping[str, str]], T]
    done: threading.Event = field(default_factory=threading.Event)
    value: T | None = None


class PromptDesk:
    """The open questions, by id."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream
        self._open: dict[str, _Open[Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def ask(self, title: str, form: list[dict[str, Any]], read: Callable[[Mapping[str, str]], T]) -> T:
        """Put the question on the page and wait for an answer ``read`` accepts."""
        prompt_id = f"p{next(self._ids)}"
        question: _Open[T] = _Open(read)
        with self._lock:
            self._open[prompt_id] = question
        self.stream.emit(PROMPT, id=prompt_id, title=title, fields=form)
        while not question.done.wait(0.2):  # short waits: a signal is handled between them
            pass
        return question.value  # type: ignore[return-value]

    def answer(self, prompt_id: str, form: Mapping[str, str]) -> str | None:
        """Take an answer from the page: None when taken, else why not (one line)."""
        with self._lock:
            question = self._open.get(prompt_id)
            if question is None:
                return f"no open question {prompt_id!r} (answered already?)"
            try:
                question.value = question.read(form)
            except InvalidAnswer as error:
                return str(error)
            del self._open[prompt_id]
        self.stream.emit(ANSWER, id=prompt_id, operator=form.get("operator", "").strip(),
                         answers={k: v for k, v in form.items() if k != "token"})
        question.done.set()
        return None
