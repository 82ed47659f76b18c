"""Online loss-landscape probe of one weight matrix (paper Sec 4.3, App 12).

At a training milestone the probe freezes the model, and for one 2-D target
parameter W0 (shape (m, n), default the 10th transformer layer's
`mlp/down_proj`):

1. accumulates the exact gradient G = mean_b grad_W L(W0; batch_b) over
   `grad_batches` independent batches, spread over `jax.local_devices()` with
   `pmap` and reduced with `psum` (the paper's DDP all_reduce), together with
   the centered row / column gradient covariances
     C_row = mean_b (G_b - G)(G_b - G)^T  (m, m),
     C_col = mean_b (G_b - G)^T(G_b - G)  (n, n);
2. takes the SVD G = U S V^T and builds the spike direction D_spike = c u_1 v_1^T
   (1st pair, paper eq. (8)) and the bulk direction D_bulk = c u_k v_k^T (k-th
   pair, 1-based, k = 500 by default, eq. (9)); the scale c is the
   `normalization` choice (eq. (8)-(9) are stripped from the paper):
     "unit":      c = 1, so ||D||_F = ||D||_2 = 1 and alpha is in weight units;
     "spectral":  c = ||W0||_2 (alpha relative to W0's operator norm);
     "frobenius": c = ||W0||_F (Li et al. 2018's layer-level normalization);
3. evaluates L(W0 + alpha D_spike + beta D_bulk) on a grid x grid lattice
   (eq. (10)), each point averaged over `eval_batches` fixed batches, with
   points vmapped in chunks and chunks spread over devices;
4. reports the kinematic metrics of App 12: effective rank of W0 (normalized
   Shannon entropy of its singular values), spike range (max - min loss along
   alpha at beta = 0, absolute and relative to the center loss), center loss
   (alpha = beta = 0) and, for contrast, the bulk range along beta at alpha = 0.

The model is never mutated: the probe works on `nnx.split` copies and merges a
fresh module inside each traced function, so W0 (and every other variable,
optimizer state and RNG outside it) is bit-identical afterwards. Nothing here
knows about LLaMA: any NNX model, any `loss_fn(model, batch) -> scalar` and any
2-D parameter path work.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import itertools
import os
import time
from typing import Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from muon_jax.infra import config
from muon_jax.infra import results
from muon_jax import stats
from muon_jax.infra.config import field

NORMALIZATIONS = ("unit", "spectral", "frobenius")
_AXIS = "probe_devices"


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
  """Probe settings; defaults are the paper's App 12 values.

  `path` is matched as a contiguous run of '/'-separated components of the
  model's 2-D `nnx.Param` paths ("layers/9/mlp/down_proj" is the 10th layer,
  0-based index 9). When `bulk_index` exceeds min(m, n) the middle of the
  spectrum, min(m, n) // 2 + 1, is used instead and logged.
  """

  path: str = field("layers/9/mlp/down_proj", "target 2-D parameter (0-based layer index)")
  grad_batches: int = field(50, "batches averaged for the exact gradient", low=1)
  eval_batches: int = field(10, "fixed batches averaged at each grid point", low=1)
  bulk_index: int = field(500, "1-based singular pair of the bulk direction", low=2)
  grid: int = field(41, "grid points per axis", low=3)
  alpha_range: tuple[float, ...] = field((-1.0, 1.0), "spike-axis range low,high")
  beta_range: tuple[float, ...] = field((-1.0, 1.0), "bulk-axis range low,high")
  normalization: str = field("unit", "direction scale (see the module doc)", choices=NORMALIZATIONS)
  chunk: int = field(8, "grid points vmapped together on each device per call", low=1)
  save_arrays: bool = field(True, "keep the gradient and covariance matrices (.npz)")


class ProbeResult(dict):
  """The JSON-serializable probe result, plus NumPy arrays in `.arrays`.

  A dict subclass, so `json.dumps(result)` writes only the JSON part; the
  (possibly large) gradient and covariance matrices ride along in `.arrays`
  and `save_probe` stores them in a sibling .npz file.
  """

  def __init__(self, data: dict, arrays: dict | None = None):
    super().__init__(data)
    self.arrays = dict(arrays or {})


def validate_probe_config(cfg: ProbeConfig) -> None:
  """Raises ValueError, starting with the field's name, for settings that
  cannot describe a probe."""
  config.check(cfg)
  for name in ("alpha_range", "beta_range"):
    bounds = tuple(getattr(cfg, name))
    if len(bounds) != 2 or not (np.all(np.isfinite(bounds)) and bounds[0] < bounds[1]):
      raise ValueError(
        f"{name}={','.join(map(str, bounds))} must be two finite numbers low,high with low < high"
      )
  if not cfg.path.strip("/"):
    raise ValueError("path must name a 2-D parameter, got an empty path")


def _display(path: str) -> str:
  """'layers/0/kernel/value' -> 'layers/0/kernel' (NNX Variable leaves end in /value)."""
  return path[: -len("/value")] if path.endswith("/value") else path


def _matches(path: str, query: str) -> bool:
  parts, want = path.split("/"), [q for q in query.strip("/").split("/") if q]
  return any(parts[i : i + len(want)] == want for i in range(len(parts) - len(want) + 1))


def resolve_target(model: nnx.Module, path: str) -> tuple[int, str, tuple[int, int]]:
  """(leaf index in the flattened Param state, full path, shape) of the target.

  Raises ValueError (listing the valid 2-D paths) unless exactly one 2-D
  parameter with both dimensions >= 2 matches `path`.
  """
  flat = jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))[0]
  valid = [
    (i, _display(jax.tree_util.keystr(p, simple=True, separator="/")), tuple(x.shape))
    for i, (p, x) in enumerate(flat)
    if len(x.shape) == 2 and min(x.shape) >= 2
  ]
  hits = [v for v in valid if _matches(v[1], path)]
  if len(hits) != 1:
    listing = ", ".join(f"{p} {list(s)}" for _, p, s in valid) or "none"
    what = "matches no" if not hits else f"is ambiguous ({len(hits)} matches) among the"
    raise ValueError(f"path={path!r} {what} 2-D parameters; valid paths: {listing}")
  return hits[0]


def check_probe(model: nnx.Module, cfg: ProbeConfig) -> None:
  """Validates `cfg` against `model` (call before training compiles; an
  abstract `nnx.eval_shape` model works, only shapes are read)."""
  validate_probe_config(cfg)
  resolve_target(model, cfg.path)


def grid_axes(cfg: ProbeConfig) -> tuple[np.ndarray, np.ndarray]:
  """alpha and beta axes (linspace; values within 1e-12 of 0 snapped to 0)."""

  def axis(lo, hi):
    a = np.linspace(lo, hi, cfg.grid)
    a[np.abs(a) < 1e-12] = 0.0
    return a

  return axis(*cfg.alpha_range), axis(*cfg.beta_range)


def singular_direction(
  u_M: np.ndarray, v_N: np.ndarray, w0_MxN: np.ndarray, normalization: str
) -> np.ndarray:
  """c * u v^T with the scale c of `normalization` (paper eq. (8)-(9))."""
  scale = {
    "unit": 1.0,
    "spectral": lambda: np.linalg.norm(w0_MxN, 2),
    "frobenius": lambda: np.linalg.norm(w0_MxN),
  }[normalization]
  return (scale if isinstance(scale, float) else scale()) * np.outer(u_M, v_N)


def bulk_pair_index(bulk_index: int, rank: int) -> tuple[int, bool]:
  """0-based index of the bulk pair and whether the mid-spectrum fallback applied."""
  if bulk_index <= rank:
    return bulk_index - 1, False
  return rank // 2, True


# ---------------------------------------------------------------------------
# Traced pieces, cached per (model structure, loss_fn, target, devices) so that
# later probes of the same run reuse the compiled functions.


def _loss_at(graphdef, treedef, index, loss_fn, leaves, rest, w, batch):
  """loss_fn on a fresh module whose target leaf is `w` (cast to its dtype)."""
  leaves = list(leaves)
  leaves[index] = w.astype(leaves[index].dtype)
  model = nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, leaves), rest)
  return loss_fn(model, batch)


@functools.lru_cache(maxsize=8)
def _compiled(graphdef, treedef, index: int, loss_fn: Callable, devices: tuple):
  loss_at = functools.partial(_loss_at, graphdef, treedef, index, loss_fn)

  def accumulate(acc, leaves, rest, batch, weight):
    """acc + weight * (G_b, G_b G_b^T, G_b^T G_b, loss_b) for this device's batch."""
    loss, g = jax.value_and_grad(lambda w: loss_at(leaves, rest, w, batch))(leaves[index])
    g = g.astype(jnp.float32)
    return jax.tree.map(lambda a, x: a + weight * x, acc, (g, g @ g.T, g.T @ g, loss))

  def reduce(acc):
    return jax.lax.psum(acc, _AXIS)

  def evaluate(leaves, rest, w0, d_spike, d_bulk, coords_Cx2, batches_E):
    """Mean loss over the E eval batches at each of the C points of this chunk."""

    def point(ab):
      w = w0 + ab[0] * d_spike + ab[1] * d_bulk

      def body(total, batch):
        return total + loss_at(leaves, rest, w, batch).astype(jnp.float32), None

      total, _ = jax.lax.scan(body, jnp.float32(0.0), batches_E)
      return total / batches_E.shape[0]

    return jax.vmap(point)(coords_Cx2)

  pm = functools.partial(jax.pmap, axis_name=_AXIS, devices=list(devices))
  return (
    pm(accumulate, in_axes=(0, None, None, 0, 0)),
    pm(reduce),
    pm(evaluate, in_axes=(None, None, None, None, None, 0, None)),
  )


def _take(batches: Iterable, count: int, name: str) -> list[np.ndarray]:
  taken = [np.asarray(b) for b in itertools.islice(iter(batches), count)]
  if len(taken) < count:
    raise ValueError(f"{name}={count} but only {len(taken)} batches were supplied")
  shapes = {(b.shape, b.dtype.str) for b in taken}
  if len(shapes) != 1:
    raise ValueError(f"{name}: batches must share one shape and dtype, got {sorted(shapes)}")
  return taken


def probe(
  model: nnx.Module,
  loss_fn: Callable,
  grad_batches: Iterable,
  eval_batches: Sequence,
  cfg: ProbeConfig,
  *,
  devices=None,
) -> ProbeResult:
  """Runs the App 12 probe on `model` at its current weights (model untouched).

  Args:
    model: any Flax NNX module.
    loss_fn: loss_fn(model, batch) -> scalar mean loss (jit/vmap traceable).
    grad_batches: iterable yielding at least cfg.grad_batches arrays of one
      shape; each batch goes whole to one device. When the count is not a
      multiple of the device count the last round is padded with a repeat of
      one of its batches at weight 0, so the average is over exactly
      cfg.grad_batches batches.
    eval_batches: at least cfg.eval_batches arrays of one shape, used at every
      grid point (each device holds all of them and evaluates its own points).
    cfg: ProbeConfig.
    devices: devices to spread over (default jax.local_devices()).

  Returns a ProbeResult: "loss_grid"[i][j] = L(alpha[i], beta[j]) averaged
  over the eval batches, the axes, "alpha_line" (beta = 0) and "beta_line"
  (alpha = 0), "metrics", "singular_values" (gradient and weight), the
  covariance spectra, and `.arrays` with "gradient" (m, n), "row_covariance"
  (m, m) and "col_covariance" (n, n) when cfg.save_arrays.
  """
  validate_probe_config(cfg)
  index, path, (m, n) = resolve_target(model, cfg.path)
  devices = tuple(devices or jax.local_devices())
  n_dev = len(devices)
  grads = _take(grad_batches, cfg.grad_batches, "grad_batches")
  evals_E = np.stack(_take(eval_batches, cfg.eval_batches, "eval_batches"))
  alpha, beta = grid_axes(cfg)

  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  leaves, treedef = jax.tree_util.tree_flatten(params)
  accumulate, reduce, evaluate = _compiled(graphdef, treedef, index, loss_fn, devices)

  # 1. Exact gradient and covariances, batches spread over devices.
  t0 = time.time()
  zeros = lambda *s: jnp.zeros((n_dev, *s), jnp.float32)
  acc = (zeros(m, n), zeros(m, m), zeros(n, n), zeros())
  rounds = -(-len(grads) // n_dev)
  if len(grads) % n_dev:
    logging.info(
      "probe: %d grad batches over %d devices; padding the last round with %d weight-0 repeats",
      len(grads),
      n_dev,
      rounds * n_dev - len(grads),
    )
  for r in range(rounds):
    chunk = grads[r * n_dev : (r + 1) * n_dev]
    weights = np.array([1.0] * len(chunk) + [0.0] * (n_dev - len(chunk)), np.float32)
    chunk = chunk + [chunk[0]] * (n_dev - len(chunk))
    acc = accumulate(acc, leaves, rest, np.stack(chunk), weights)
  g_sum, row_sum, col_sum, loss_sum = (np.asarray(x[0], np.float64) for x in reduce(acc))
  b = float(len(grads))
  g_MxN = g_sum / b
  row_cov = row_sum / b - g_MxN @ g_MxN.T
  col_cov = col_sum / b - g_MxN.T @ g_MxN
  grad_s = time.time() - t0

  # 2. Directions from the SVD of the averaged gradient.
  u, s_grad, vt = np.linalg.svd(g_MxN, full_matrices=False)
  rank = len(s_grad)
  k, fallback = bulk_pair_index(cfg.bulk_index, rank)
  if fallback:
    logging.warning(
      "probe: bulk_index=%d > min(m, n)=%d for %s; using the middle pair %d",
      cfg.bulk_index,
      rank,
      path,
      k + 1,
    )
  w0_MxN = np.asarray(leaves[index], np.float64)
  d_spike = singular_direction(u[:, 0], vt[0], w0_MxN, cfg.normalization)
  d_bulk = singular_direction(u[:, k], vt[k], w0_MxN, cfg.normalization)

  # 3. Grid plus the beta = 0 / alpha = 0 lines and the center when the grid
  # misses them, all in one batched pass.
  t0 = time.time()
  aa, bb = np.meshgrid(alpha, beta, indexing="ij")
  coords = [np.stack([aa.ravel(), bb.ravel()], -1)]
  extra = {}
  if not np.any(beta == 0.0):
    extra["alpha_line"] = np.stack([alpha, np.zeros_like(alpha)], -1)
  if not np.any(alpha == 0.0):
    extra["beta_line"] = np.stack([np.zeros_like(beta), beta], -1)
  if not (np.any(alpha == 0.0) and np.any(beta == 0.0)):
    extra["center"] = np.zeros((1, 2))
  coords_Px2 = np.concatenate(coords + list(extra.values())).astype(np.float32)
  per_call = n_dev * cfg.chunk
  calls = -(-len(coords_Px2) // per_call)
  padded = np.zeros((calls * per_call, 2), np.float32)
  padded[: len(coords_Px2)] = coords_Px2
  padded = padded.reshape(calls, n_dev, cfg.chunk, 2)
  w0 = jnp.asarray(leaves[index], jnp.float32)
  d1, d2 = jnp.asarray(d_spike, jnp.float32), jnp.asarray(d_bulk, jnp.float32)
  out = []
  for c in range(calls):
    out.append(np.asarray(evaluate(leaves, rest, w0, d1, d2, padded[c], evals_E)))
    if (c + 1) % max(1, calls // 10) == 0:
      logging.info("probe %s: %d/%d grid calls, %.1fs", path, c + 1, calls, time.time() - t0)
  losses = np.concatenate([o.reshape(-1) for o in out])[: len(coords_Px2)].astype(np.float64)
  grid_P = len(alpha) * len(beta)
  loss_grid = losses[:grid_P].reshape(len(alpha), len(beta))
  pos, lines = grid_P, {}
  for name, pts in extra.items():
    lines[name] = losses[pos : pos + len(pts)]
    pos += len(pts)
  i0, j0 = np.flatnonzero(alpha == 0.0), np.flatnonzero(beta == 0.0)
  alpha_line = loss_grid[:, j0[0]] if j0.size else lines["alpha_line"]
  beta_line = loss_grid[i0[0], :] if i0.size else lines["beta_line"]
  center = float(loss_grid[i0[0], j0[0]] if i0.size and j0.size else lines["center"][0])
  grid_s = time.time() - t0

  # 4. Kinematic metrics (App 12).
  s_w = np.linalg.svd(w0_MxN, compute_uv=False)
  spike_range = float(np.ptp(alpha_line))
  bulk_range = float(np.ptp(beta_line))
  out_metrics = {
    "effective_rank": float(stats.effective_rank(s_w, normalized=True)),
    "effective_rank_gradient": float(stats.effective_rank(s_grad, normalized=True)),
    "spike_range": spike_range,
    "spike_range_rel": spike_range / abs(center) if center else float("inf"),
    "bulk_range": bulk_range,
    "bulk_range_rel": bulk_range / abs(center) if center else float("inf"),
    "center_loss": center,
    "grad_batch_loss": float(loss_sum) / b,
    "grad_norm": float(np.linalg.norm(g_MxN)),
    "spike_singular_value": float(s_grad[0]),
    "bulk_singular_value": float(s_grad[k]),
    "weight_fro_norm": float(np.linalg.norm(w0_MxN)),
    "weight_spectral_norm": float(s_w[0]),
  }
  logging.info(
    "probe %s: %s (grad %.1fs, grid %.1fs)",
    path,
    {key: round(v, 5) for key, v in out_metrics.items()},
    grad_s,
    grid_s,
  )
  data = {
    "path": path,
    "shape": [m, n],
    "config": dataclasses.asdict(cfg),
    "bulk_index_used": k + 1,
    "bulk_index_fallback": fallback,
    "num_devices": n_dev,
    "alpha": alpha.tolist(),
    "beta": beta.tolist(),
    "loss_grid": loss_grid.tolist(),
    "alpha_line": list(map(float, alpha_line)),
    "beta_line": list(map(float, beta_line)),
    "metrics": out_metrics,
    "singular_values": {"gradient": s_grad.tolist(), "weight": s_w.tolist()},
    "covariance": {
      "row_eigenvalues": np.linalg.eigvalsh(row_cov)[::-1].tolist(),
      "col_eigenvalues": np.linalg.eigvalsh(col_cov)[::-1].tolist(),
      "trace": float(np.trace(row_cov)),
    },
    "timing_s": {"gradient": grad_s, "grid": grid_s},
  }
  arrays = (
    {
      "gradient": g_MxN.astype(np.float32),
      "row_covariance": row_cov.astype(np.float32),
      "col_covariance": col_cov.astype(np.float32),
    }
    if cfg.save_arrays
    else {}
  )
  return ProbeResult(data, arrays)


def probe_path(out_dir: str, step: int) -> str:
  return os.path.join(out_dir, f"probe_step{int(step)}.json")


def save_probe(out_dir: str, step: int, result: dict) -> str:
  """Writes out_dir/probe_step{step}.json (and .npz of result.arrays) atomically.

  The .npz goes first, so a finished JSON (what `probe_done` checks) implies
  its arrays are on disk too. Returns the JSON path.
  """
  path = probe_path(out_dir, step)
  arrays = getattr(result, "arrays", None)
  if arrays:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    results.atomic_write_bytes(path[: -len(".json")] + ".npz", buf.getvalue())
  results.atomic_write_json(path, {"step": int(step), **dict(result)})
  return path


def probe_done(out_dir: str, step: int) -> bool:
  return os.path.exists(probe_path(out_dir, step))


def load_probes(run_dir: str) -> list[dict]:
  """All probe_step*.json of a run, sorted by step."""
  found = []
  for name in os.listdir(run_dir):
    if name.startswith("probe_step") and name.endswith(".json"):
      found.append(results.load_json(os.path.join(run_dir, name)))
  return sorted(found, key=lambda r: r["step"])
