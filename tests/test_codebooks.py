import pytest
from conftest import run_cli

from devquarry import InputError
from devquarry.codebooks import list_codebooks, load_codebook


def test_shipped_codebooks():
    ids = list(list_codebooks().id)
    assert ids == ["chen2024-forum", "chen2025-so-api", "llm-limits", "playbook"]
    forum = load_codebook("chen2024-forum")
    assert len(forum.at_level(0)) == 6 and len(forum.at_level(1)) == 26 and forum.human_kappa == 0.812
    # The published shares add up, and each category's subcategories add up to it.
    assert sum(c.share for c in forum.at_level(0)) == pytest.approx(100.0)
    for cat in forum.at_level(0):
        assert sum(c.share for c in forum.codes if c.parent == cat.id) == pytest.approx(cat.share)
    assert forum.ancestor("C.5", 0) == "C" and forum.code("E.1").name == "Development"
    so = load_codebook("chen2025-so-api")
    assert len(so.codes) == 9 and so.by_source_value()["5"] == "audio" and so.human_kappa == 0.822
    fixes = {c.id for c in load_codebook("playbook").codes}
    assert fixes == {"prompt-engineering", "rag", "fine-tuning", "provider"}
    assert len(load_codebook("llm-limits").codes) == 6


def test_playbook_covers_every_challenge_code():
    playbook = load_codebook("playbook")
    for other in ("chen2024-forum", "chen2025-so-api", "llm-limits"):
        cb = load_codebook(other)
        covered = [code for c in playbook.codes for code in c.applies_to.get(other, [])]
        leaves = {c.id for c in cb.codes if not any(x.parent == c.id for x in cb.codes)}
        assert set(covered) == leaves and len(covered) == len(set(covered)), other


BAD = {
    "dup": ("id: x\nname: X\ncodes:\n  - {id: A, name: a}\n  - {id: A, name: b}\n", "code A: field 'id': duplicate code id"),
    "parent": (
        "id: x\nname: X\ncodes:\n  - {id: A.1, name: a, parent: A}\n",
        "code A.1: field 'parent': parent 'A' is not a code",
    ),
    "share": ("id: x\nname: X\ncodes:\n  - {id: A, name: a, share: 140}\n", "code A: field 'share'"),
    "name": ("id: x\nname: X\ncodes:\n  - {id: A}\n", "code A: field 'name': required"),
    "yaml": ("id: x\nname: [X\ncodes: []\n", "invalid YAML"),
    "key": ("id: x\nname: X\ncolour: red\ncodes:\n  - {id: A, name: a}\n", "field 'colour'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_codebooks_name_the_code_and_field(case, tmp_path):
    text, expected = BAD[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_codebook(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_user_codebook_and_cli(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "id: mine\nname: My taxonomy\nlevels: [area, issue]\ncodes:\n  - {id: infra, name: Infrastructure}\n"
        "  - {id: infra.gpu, name: GPUs, parent: infra, keywords: [cuda, gpu]}\n"
    )
    cb = load_codebook(path)
    assert cb.code("infra.gpu").level == 1 and cb.levels == ("area", "issue")
    proc = run_cli("codebooks", "show", str(path), "--json")
    assert proc.returncode == 0 and '"infra.gpu"' in proc.stdout
    proc = run_cli("sample", "--codebook", "chen2024-forum", "--confidence", "0.99", "--margin", "0.025", "--population", "29057")
    assert proc.returncode == 0 and "n = 2,432" in proc.stdout and "n0 = z^2 p(1-p) / e^2" in proc.stdout
