"""Stop requests at safe points (muon_jax.infra.interrupt)."""

import os
import signal

import pytest

from muon_jax.infra import interrupt


def test_check_raises_only_after_a_signal_inside_the_context():
  previous = signal.getsignal(signal.SIGTERM)
  interrupt.check()  # outside the context a check never stops anything
  with interrupt.stop_at_safe_points():
    interrupt.check()
    os.kill(os.getpid(), signal.SIGTERM)  # recorded, the work goes on to the next check
    assert interrupt.requested()
    with pytest.raises(interrupt.Interrupted, match="SIGTERM"):
      interrupt.check()
    with pytest.raises(KeyboardInterrupt):  # a second signal stops at once
      os.kill(os.getpid(), signal.SIGINT)
  # Leaving the context forgets the request and restores the handlers.
  assert not interrupt.requested() and signal.getsignal(signal.SIGTERM) is previous
  interrupt.check()
