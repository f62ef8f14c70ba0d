"""One module per lab; importing this package registers every lab's checks (in the chain's order)."""
from . import agent, data, deploy, eval, finetune, preference, pretrain, rag, rl, tour  # noqa: F401
