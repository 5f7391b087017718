"""The baseline for bench/search.py: bench/bare_app.py answering GET /reception/patients?q=…
with the statements the LIS sent for that very `q` (recorded by bench/search.py with the
same session cookie and HX-Request header wrk sends), padded to the size of the LIS's
answer.

The engine, pool, template and padding are bare_app's own (imported, not copied); only the
routing differs: bare_app registers one URL rule per recorded path, which cannot key on a
query string, so this module looks the recording up by `q`.

    BENCH_PAGES=/tmp/search.pickle DATABASE_URL=… gunicorn --pythonpath bench search_bare_app:app
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from flask import abort, request

_recording = Path(os.environ["BENCH_PAGES"])
# bare_app reads BENCH_PAGES at import and adds a rule per path: give it none, then hand it
# the recording (its render() looks pages up in its module-level dict).
with tempfile.NamedTemporaryFile(suffix=".pickle") as _empty:
    _empty.write(pickle.dumps({}))
    _empty.flush()
    os.environ["BENCH_PAGES"] = _empty.name
    import bare_app  # noqa: E402
os.environ["BENCH_PAGES"] = str(_recording)

bare_app.pages.update(pickle.loads(_recording.read_bytes()))
by_query = {parse_qs(urlsplit(path).query).get("q", [""])[0]: path for path in bare_app.pages}
app = bare_app.app


@app.get("/reception/patients")
def patient_search() -> str:
    path = by_query.get(request.args.get("q", ""))
    if path is None:
        abort(404)
    return bare_app.render(path)
