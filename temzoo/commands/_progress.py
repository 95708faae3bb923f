"""A tqdm progress bar on stderr for training commands (budget fraction 0..1 -> 0..1000)."""

from __future__ import annotations

import sys
from collections.abc import Callable


class TrainingBar:
    """``on_step``/``log`` callbacks that drive one tqdm bar and print log lines above it."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self._bar = None
        self.pos = 0

    @property
    def bar(self):
        # Created on first use, so an error during setup prints only the 'error:' line.
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=1000, desc=self.desc, file=sys.stderr, dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")
        return self._bar

    def on_step(self, info: dict) -> None:
        new = int(round(1000 * min(1.0, info.get("progress", 0.0))))
        if new > self.pos:
            self.bar.update(new - self.pos)
            self.pos = new
        self.bar.set_postfix_str(f"epoch {info.get('epoch')} loss {info.get('loss', float('nan')):.4f}", refresh=False)

    def log(self, line: str) -> None:
        self.bar.write(line, file=sys.stderr)

    def close(self, finished: bool = True) -> None:
        if self._bar is None:
            return
        if finished and self.pos < 1000:
            self._bar.update(1000 - self.pos)
        self._bar.close()

    @property
    def callbacks(self) -> tuple[Callable[[dict], None], Callable[[str], None]]:
        return self.on_step, self.log
