"""Functions ``job.map`` sends to other processes (a ProcessPoolExecutor pickles them by
reference, so they live in a module the children can import)."""

import os
import time


def square(x: int) -> int:
    return x * x


def pid_and_square(x: int) -> tuple[int, int]:
    time.sleep(0.002)
    return os.getpid(), x * x
