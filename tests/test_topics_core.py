"""The topic pipeline without BERTopic: c-TF-IDF keywords and NPMI of our own, the same figures as
the BERTopic/gensim path gave; and, with the [bertopic] extra, a real BERTopic model per run."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, copy_store

from devquarry import Store

HEAVY = ["bertopic", "sentence_transformers", "torch", "umap", "hdbscan", "numba", "gensim"]

# The first six topics of the default pipeline on the 2,299 labelled questions, and the NPMI
# gensim's CoherenceModel(c_npmi, window 10) gave each over those questions (before gensim left the core).
GENSIM_NPMI = [
    (["chatgpt", "api", "gpt", "using", "like", "tokens", "use", "end", "number", "text"], 0.009483689805080082),
    (
        ["role", "content", "messages", "user", "gpt", "message", "response", "assistant", "function", "turbo"],
        0.20709343483276252,
    ),
    (
        ["question", "answer", "query", "chatbot", "questions", "user", "information", "database", "llm", "documents"],
        0.06563827110737813,
    ),
    (
        [
            "embeddings",
            "chroma",
            "langchain",
            "documents",
            "text_splitter",
            "import",
            "openaiembeddings",
            "faiss",
            "db",
            "loader",
        ],
        0.23923412004069564,
    ),
    (
        ["llm", "langchain", "chain", "import", "chatopenai", "output", "template", "prompt", "prompttemplate", "st"],
        0.13563473033363987,
    ),
    (["api", "ch", "json", "v1", "authorization", "bearer", "content", "headers", "curl_setopt", "com"], 0.2866013957077686),
]


@pytest.fixture(scope="module")
def so_docs():
    """The benchmark's corpus (bench/topics.py): title and body of each question as in the file."""
    import pandas as pd
    from conftest import SHARED

    from devquarry.text import thread_text

    path = SHARED / "stackoverflow-openai-api" / "questions_labelled.csv.gz"
    if not path.exists():
        pytest.skip(f"needs {path}")
    df = pd.read_csv(path)
    return [thread_text(t, b) for t, b in zip(df.title, df.body.fillna(""))]


@pytest.fixture(scope="module")
def so_store(so_db, tmp_path_factory):
    return copy_store(so_db, tmp_path_factory.mktemp("topics-core"))


@pytest.fixture
def forum_store(tmp_path, shared):
    """30 real forum topic-list entries: the smallest corpus that gets topics."""
    from devquarry import ingest_discourse

    db = tmp_path / "forum.duckdb"
    with Store(db) as s:
        ingest_discourse(s, [shared / "discourse-openai-forum" / "latest.json"])
    return db


def test_npmi_equals_the_figures_gensim_gave(so_docs):
    from devquarry.topics.quality import npmi_coherence, npmi_per_topic

    topics = [w for w, _ in GENSIM_NPMI]
    assert npmi_per_topic(topics, so_docs) == pytest.approx([v for _, v in GENSIM_NPMI], abs=1e-6)
    assert npmi_coherence(topics, so_docs) == pytest.approx(sum(v for _, v in GENSIM_NPMI) / 6, abs=1e-6)


def test_npmi_equals_gensim_on_a_sample(so_docs):
    """Short documents (one window), repeated words in a window and words absent from the sample."""
    pytest.importorskip("gensim")
    from gensim.corpora import Dictionary
    from gensim.models.coherencemodel import CoherenceModel

    from devquarry.topics.quality import npmi_per_topic, tokenize

    sample = so_docs[:150] + ["api key", "", "error error error api key error"]
    topics = [w for w, _ in GENSIM_NPMI] + [["error", "key", "api", "notawordanywhere"]]
    tokens = [tokenize(t) for t in sample]
    dictionary = Dictionary(tokens)
    kept = [[w for w in t if w in dictionary.token2id] for t in topics]
    expected = CoherenceModel(
        topics=kept, texts=tokens, dictionary=dictionary, coherence="c_npmi", topn=10, window_size=10, processes=1
    ).get_coherence_per_topic()
    assert npmi_per_topic(topics, sample) == pytest.approx(expected, abs=1e-6)


def test_default_pipeline_gives_the_bertopic_figures(so_store):
    """Without BERTopic, the default run on the labelled questions has the topics (ids of
    equal-size topics included), keywords, NPMI and diversity the BERTopic-based pipeline gave."""
    from devquarry.topics import fit_topics

    with Store(so_store) as s:
        r = fit_topics(s, bertopic_model=False)
    assert r.quality["n_topics"] == 30 and r.quality["npmi"] == 0.1472 and r.quality["diversity"] == 0.76
    assert r.topics["size"].tolist()[:4] == [138, 138, 136, 136]
    by_id = r.topics.set_index("topic_id")
    assert by_id.loc[0, "keywords"] == [
        "java",
        "error",
        "api",
        "com",
        "openai",
        "version",
        "artifactid",
        "groupid",
        "https",
        "code",
    ]
    assert by_id.loc[2, "keywords"][:4] == ["whisper", "audio", "transcribe", "transcription"]
    # identifiers keep their underscore: BERTopic's ASCII-only filter never applied with our embedder
    assert by_id.loc[5, "keywords"][:3] == ["langchain", "text_splitter", "embeddings"]
    assert all(len(k) == 0 for k in r.topics.keybert) and r.model is None


CORE_RUN = """
import json, sys
{block}
from devquarry import Store
from devquarry.topics import fit_topics
with Store(sys.argv[1]) as s:
    r = fit_topics(s, min_topic_size=3, nr_topics=3, themes=2{kwargs})
heavy = [m for m in {heavy!r} if m in sys.modules]
print(json.dumps({{"heavy": heavy, "keybert": [list(k) for k in r.topics.keybert], "keywords": [list(k) for k in r.topics.keywords],
                  "quality": r.quality}}))
"""

# A core install, simulated: the extras' packages cannot be found.
BLOCK = """
import importlib.abc
class NoExtras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {heavy!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NoExtras())
import importlib.util
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: None if name.split(".")[0] in {heavy!r} else _find_spec(name, package)
"""


def _core_run(db, block: str = "", kwargs: str = "") -> dict:
    code = CORE_RUN.format(block=block.format(heavy=HEAVY), kwargs=kwargs, heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_default_fit_imports_no_heavy_module(forum_store):
    out = _core_run(forum_store, kwargs=", bertopic_model=False")
    assert out["heavy"] == []
    # 30 documents cluster a little differently with each CPU's BLAS: the big topic's words, not their ranks
    assert out["quality"]["n_topics"] == 3 and {"message", "gpt", "code"} <= set(out["keywords"][0][:5])
    assert out["keybert"] == [[], [], []]


def test_core_install_runs_the_default_and_names_the_extra(forum_store):
    out = _core_run(forum_store, block=BLOCK)  # bertopic_model=None: not installed, so no model
    assert out["heavy"] == [] and out["keybert"] == [[], [], []]
    assert out["keywords"][1][:3] == ["file", "client", "api_key"]
    with Store(forum_store) as s:
        assert "bertopic_model" not in json.loads(s.query("SELECT params FROM run WHERE command = 'topics'").params.iloc[-1])
    code = BLOCK.format(heavy=HEAVY) + (
        "from devquarry import Store\nfrom devquarry.topics import fit_topics\n"
        "with Store(sys.argv[1]) as s:\n    fit_topics(s, min_topic_size=3, nr_topics=3, clustering='hdbscan')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code, str(forum_store)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode != 0 and "MissingExtra" in proc.stderr and "pip install 'devquarry[bertopic]'" in proc.stderr


def test_bertopic_model_saved_and_loadable(forum_store):
    pytest.importorskip("bertopic")
    from bertopic import BERTopic

    from devquarry.topics import fit_topics

    with Store(forum_store) as s:
        r = fit_topics(s, min_topic_size=3, nr_topics=3, bertopic_model=True, quality=False)
        params = json.loads(s.query("SELECT params FROM run WHERE run_id = ?", [r.run_id]).params.iloc[0])
    folder = forum_store.with_name("forum.duckdb.topics") / f"run-{r.run_id}"
    assert params["bertopic_model"] == str(folder) and (folder / "topics.json").exists()
    assert (folder / "ctfidf.safetensors").exists()
    loaded = BERTopic.load(str(folder))
    for row in r.topics.itertuples():
        assert [w for w, _ in loaded.get_topic(row.topic_id)][: len(row.keywords)] == list(row.keywords)
        assert len(row.keybert) > 0
    assert sorted(loaded.get_topic_info().Count) == sorted(r.topics["size"])
    figure = loaded.visualize_barchart()
    assert len(figure.data) == 3


def test_a_run_is_reused_only_for_the_same_threads_and_params(forum_store):
    """What lets a second `devquarry demo` keep the first one's topic run, and only then."""
    from devquarry.reuse import reusable_run, threads_fingerprint
    from devquarry.topics import fit_topics

    with Store(forum_store) as s:
        r = fit_topics(s, min_topic_size=3, nr_topics=3, quality=False, bertopic_model=False)
        before = threads_fingerprint(s.threads())
        assert reusable_run(s, "topics", {"inputs": before, "nr_topics": 3}) == (r.run_id, r.quality)
        assert reusable_run(s, "topics", {"inputs": before, "nr_topics": 4}) is None
        s.con.execute("UPDATE thread SET title = title || ' (edited)' WHERE source_id = (SELECT min(source_id) FROM thread)")
        after = threads_fingerprint(s.threads())
        assert after != before and after.split(":")[0] == before.split(":")[0] == "30"
        assert reusable_run(s, "topics", {"inputs": after, "nr_topics": 3}) is None
