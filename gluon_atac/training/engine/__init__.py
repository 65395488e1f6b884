"""The training engine both recipes share.

- :mod:`.args`: the parser and the original flags both scripts take.
- :mod:`.devices`: contexts, splitting a batch over them, batch sizes small data can fill.
- :mod:`.schedule`: learning-rate schedules.
- :mod:`.loop`: one data-parallel training epoch.
- :mod:`.losses`: label smoothing, mixup targets, distillation.
- :mod:`.evaluation`: top-1/top-k scoring and model costs.
- :mod:`.distributed`: kvstore, weight broadcast, each worker's batch plan.
- :mod:`.checkpoint`, :mod:`.run_files`, :mod:`.metrics`, :mod:`.logs`, :mod:`.progress`:
  what a run writes and shows.
"""
