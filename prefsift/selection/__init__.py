"""What an arm trains on: the selection rules over a scores table, the field's margin rules, the
treatments (weights, swapped labels, robust losses), the kinds of arm a run config can name, and
the training rows an arm's data becomes."""
