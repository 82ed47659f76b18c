"""Training figures: loss.png (train and held-out eval loss against step)."""

from __future__ import annotations

import matplotlib.pyplot as plt


def figures(results: dict) -> dict:
  """{"loss": Figure} from results["metrics"] (metrics.jsonl rows) and results["title"].

  Train loss is drawn at every logged step; eval loss at the rows that carry
  "eval_loss".
  """
  rows = results["metrics"]
  fig, ax = plt.subplots(figsize=(6, 4))
  ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label="train")
  evals = [r for r in rows if "eval_loss" in r]
  if evals:
    ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="eval")
  ax.set_xlabel("step")
  ax.set_ylabel("loss (nats/token)")
  ax.set_title(results.get("title", ""))
  ax.grid(alpha=0.3)
  ax.legend()
  return {"loss": fig}
