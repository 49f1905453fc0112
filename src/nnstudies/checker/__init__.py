"""Study 2: the 9-point checkerboard MLP (course check.py / check_main.py).

data: the nine points; model: R stacked 2 -> hid -> 1 nets; train: batched restarts with
the course's stopping rule and the restarts table; hand: the hand design; analysis:
accuracy, margins, activations, dividing lines, hidden codes, the scale sweep; plots: the
course's region maps, the lines figure, the scale figure; courselog: the course's logs;
study: the two stage functions (settings in, nnstudies.outputs.Outputs out).
"""
