"""What the RAG stage's tests share with the RAG panel's (tests/panels/test_rag.py)."""
import pytest


# ---- on the chain's workspace (the labs ran; lab 09 made rag/index and rag/eval) -------------------------------
@pytest.fixture(scope="module")
def rag_ws(chain):
    ws = chain.snapshot
    if not ws.exists("rag/eval"):
        pytest.skip("the chain did not make rag/eval")
    return ws
