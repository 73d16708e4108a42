"""What the tests share and are not tests themselves: helper modules a test module imports
(``from support.scenarios import story``) and worker scripts the process tests start
(``WORKERS``). Fixtures live in tests/conftest.py; no test module imports another.

- ``workers``: the programs the process tests run (``python WORKERS <worker> <args>``)
- ``processes``: starting a worker and waiting for its ready line
- ``faulty``: a store that fails on cue; ``mapwork``: functions job.map sends to processes
- ``scenarios``: recorded sessions for the history and plots tests
- ``precondition_proxy``: an S3 proxy that drops If-Match/If-None-Match; ``moto_serial``: moto_server
  answering one request at a time
- ``notebooks``, ``colab``, ``stores``: what the notebook, Colab/Kaggle and store tests share
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKERS = str(HERE / "workers.py")
