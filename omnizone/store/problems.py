"""The error of a data file read line by line (a survey, a readings import):
every problem found, each as ``file:line: what``, so one run fixes them all."""

from pathlib import Path

#: At most this many problems are spelled out in the message; all are kept.
MAX_LISTED = 20


class FileProblems(ValueError):
    #: what the file is, for the message ("in the survey")
    what = ""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        listed = problems[:MAX_LISTED]
        more = len(problems) - len(listed)
        text = "\n".join(listed) + (f"\n… and {more} more" if more > 0 else "")
        suffix = f" {self.what}" if self.what else ""
        super().__init__(f"{self.path}: {len(problems)} problem(s){suffix}\n{text}")
