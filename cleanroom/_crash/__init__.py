"""
Crash safety: the journal, the recorder that fills it, the reaper and the sweep.
"""
