import pytest


@pytest.fixture(scope="session")
def tok(tmp_path_factory):
    """A real sentencepiece tokenizer trained on a small corpus, with the InternLM2 chat template."""
    from puyu_lab.data.pipeline import prepare
    from puyu_lab.data.sources import load_sources
    from puyu_lab.models.template import install_template
    from puyu_lab.models.tokenizer import load_tokenizer
    from puyu_lab.pretrain.train import train_tokenizer
    from puyu_lab.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("tok") / "ws")
    prepare(raw=load_sources(["news-zh", "reviews-zh"], limit_per_source=300, seed=2), show_progress=False).export(ws)
    t = load_tokenizer(train_tokenizer(ws, 3072).path)
    install_template(t)
    return t
