import pytest


@pytest.fixture(scope="session")
def tok(layers):
    """The session's real sentencepiece tokenizer (tests/conftest.py layers), with the InternLM2 chat template."""
    from puyu_lab.models.template import install_template
    from puyu_lab.models.tokenizer import load_tokenizer
    from puyu_lab.workspace import Workspace

    t = load_tokenizer(Workspace(layers.path("tokenizer")).get("tokenizer/spm").path)
    install_template(t)
    return t
