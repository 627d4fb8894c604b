from conftest import FIXTURES, run_cli

from devquarry import ingest_transcripts
from devquarry.sources.transcripts import count_tokens

T = FIXTURES / "transcripts"


def test_vtt_and_srt_give_the_same_paragraphs_with_offsets(store):
    vtt = list(__import__("devquarry").sources.TranscriptSource([T / "gettysburg.vtt"], max_tokens=60).records())
    srt = list(__import__("devquarry").sources.TranscriptSource([T / "gettysburg.srt"], max_tokens=60).records())
    assert [p.body_text for p in vtt] == [p.body_text for p in srt]
    assert len(vtt) == 7
    assert all(count_tokens(p.body_text) <= 60 for p in vtt)
    # Paragraphs end on sentence boundaries except where one sentence alone is too long.
    assert sum(p.body_text.endswith(".") for p in vtt) >= 5
    starts = [p.raw["start_seconds"] for p in vtt]
    assert starts[:5] == [0.0, 14.0, 25.5, 40.0, 57.5] and starts == sorted(starts)
    assert vtt[1].title == "gettysburg ¶2 [00:14]" and vtt[1].category == "gettysburg"
    assert vtt[0].body_text.startswith("Four score and seven years ago")
    assert " ".join(p.body_text for p in vtt).endswith("shall not perish from the earth.")


def test_ingest_default_300_tokens(store):
    c = ingest_transcripts(store, [T / "gettysburg.vtt", T / "gettysburg.txt"]).attrs["counts"]
    t = store.threads("transcript").set_index("source_id")
    assert c["threads_new"] == len(t) == 2 + 4  # VTT: 2 paragraphs; text: its own 4 blocks (title line included)
    assert all(count_tokens(b) <= 300 for b in t.body_text)
    assert t.loc["gettysburg.vtt#2", "title"].endswith("[01:15]")


def test_cli_bad_caption_file(tmp_path):
    bad = tmp_path / "talk.vtt"
    bad.write_text("not a caption file\n")
    proc = run_cli("ingest", "transcripts", str(bad), db=tmp_path / "s.duckdb")
    assert proc.returncode == 2 and "talk.vtt" in proc.stderr and "caption" in proc.stderr
