"""The changes of an exact or to-time restore at any scale: partitioned by key once, folded and applied per partition.

:mod:`.files` names the change files to read (an exact backup's own, the
archive's up to a time); :mod:`.split` streams them once into N partitions
by a hash of the key (bounded buffers, checkpointed at a line); :mod:`.apply`
folds one partition to the last image per key at or before the moment and
writes it, resumable at a position, under a write rate. The restore machine
applies the partitions in a Distributed Map, one child each; the CLI loops
over them. Either way no step holds more than one partition.
"""
