"""Finding a repeat: the finished trial of an identical configuration, by configuration key.

:class:`RepeatIndex` keeps ``config_key → trial`` of the study's finished (COMPLETE or PRUNED) trials. A
lookup that misses looks only at the trials it has not indexed yet — those numbered after the last one it
saw, and those it saw unfinished — so a study of n trials indexes each trial once instead of scanning all of
them for every new trial (which was quadratic over the study). Trials finished by other processes are
found the same way: a miss re-reads the study's trial list (one call) and indexes what is new.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netcarve.search.record import config_key

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


class RepeatIndex:
    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self._by_key: dict[str, FrozenTrial] = {}
        self._seen = 0  # trials 0 … _seen−1 were looked at
        self._unfinished: set[int] = set()  # of those, the ones that were waiting or running then

    def find(self, key: str, number: int) -> FrozenTrial | None:
        """The first finished trial (other than ``number``) whose configuration key is ``key``, or None."""
        found = self._by_key.get(key)
        if found is None or found.number == number:
            self._update()
            found = self._by_key.get(key)
        return found if found is not None and found.number != number else None

    def trial(self, number: int) -> FrozenTrial:
        """Trial ``number`` as the study has it now."""
        trials = self.study.get_trials(deepcopy=False)
        if number < len(trials) and trials[number].number == number:
            return trials[number]
        return next(t for t in trials if t.number == number)

    def _update(self) -> None:
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        fresh = [trials[i] for i in sorted(self._unfinished) if i < len(trials)] + trials[self._seen :]
        if trials and trials[-1].number != len(trials) - 1:
            fresh = trials  # not numbered 0 … n−1 in order (Optuna's storages always are): index them all
        self._unfinished = set()
        for trial in fresh:
            if trial.state in (TrialState.RUNNING, TrialState.WAITING):
                self._unfinished.add(trial.number)
                continue
            if trial.state == TrialState.FAIL:
                continue  # never a source (a failed trial is not reused), and it stays failed
            key = config_key(trial)
            known = self._by_key.get(key) if key is not None else None
            if key is not None and (known is None or trial.number < known.number):
                self._by_key[key] = trial  # the first in trial order, as a scan would find it
        self._seen = len(trials)
