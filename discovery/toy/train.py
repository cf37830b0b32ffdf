"""Train the toy model: a small GPT-2 (``GPT2LMHeadModel``) on the task mixture of ``discovery.toy.data``.

Reproducible on CPU: ``torch.manual_seed``, deterministic algorithms, a fixed thread count, and a training set
made once from the seed. The loss is cross-entropy at the answer position against the uniform distribution on
the right tokens (one token for sequences and IOI, all the right years for greater-/less-than).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from discovery.toy.data import make_training_set
from discovery.toy.vocab import build_tokenizer


@dataclass(frozen=True)
class ToyConfig:
    """The toy model's shape and training recipe (recorded in the model folder as ``training.json``)."""

    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    d_mlp: int = 512
    n_ctx: int = 32
    steps: int = 2500
    batch_size: int = 128
    lr: float = 2e-3
    warmup: int = 200
    weight_decay: float = 0.01
    train_size: int = 120_000
    seed: int = 0
    threads: int = 2


@contextmanager
def deterministic(threads: int) -> Iterator[None]:
    """Deterministic algorithms and a fixed thread count for the block; the previous settings come back after."""
    old_det, old_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def make_model(cfg: ToyConfig, tokenizer: Any) -> Any:  # a transformers.GPT2LMHeadModel
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer.get_vocab()),
        n_positions=cfg.n_ctx,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_inner=cfg.d_mlp,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(config)


def lr_at(step: int, cfg: ToyConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    out: Path, cfg: ToyConfig = ToyConfig(), log: Optional[Callable[[str], None]] = None
) -> dict[str, float]:
    """Train a toy model into folder ``out`` (config, weights, tokenizer, training.json); returns its stats."""
    log = log or (lambda message: None)
    start = time.perf_counter()
    with deterministic(cfg.threads):
        torch.manual_seed(cfg.seed)
        tokenizer = build_tokenizer(cfg.n_ctx)
        data = make_training_set(tokenizer, cfg.train_size, cfg.seed)
        model = make_model(cfg, tokenizer)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
        gen = torch.Generator().manual_seed(cfg.seed)
        loss_avg = 0.0
        try:
            for step in range(cfg.steps):
                for group in opt.param_groups:
                    group["lr"] = lr_at(step, cfg)
                batch = torch.randint(len(data), (cfg.batch_size,), generator=gen)
                ids, last, target = data.ids[batch], data.last[batch], data.targets[batch]
                width = int(last.max()) + 1
                ids = ids[:, :width]
                logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits  # [batch, pos, vocab]
                final = logits[torch.arange(len(batch)), last]  # [batch, vocab]
                loss = -(target * torch.log_softmax(final, dim=-1)).sum(-1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                loss_avg = 0.98 * loss_avg + 0.02 * loss.item() if step else loss.item()
                if (step + 1) % 250 == 0 or step + 1 == cfg.steps:
                    log(f"step {step + 1}/{cfg.steps}  loss {loss_avg:.4f}  {time.perf_counter() - start:.0f}s")
        finally:
            model.eval()
    seconds = time.perf_counter() - start
    save(model, tokenizer, out, cfg, {"train_seconds": round(seconds, 1), "final_loss": round(loss_avg, 5)})
    return {"train_seconds": seconds, "final_loss": loss_avg}


def save(model: Any, tokenizer: Any, out: Path, cfg: ToyConfig, stats: dict[str, float]) -> None:
    """Write an ordinary Hugging Face model folder (loadable by TransformerLens's bridge, like GPT-2's)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    # Name the class every transformers version knows (5.x writes its new "TokenizersBackend" name).
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config.pop("backend", None)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / "generation_config.json").unlink(missing_ok=True)
    record = {"recipe": asdict(cfg), "stats": stats, "torch": torch.__version__}
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
