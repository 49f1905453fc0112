"""Study 2: the 9-point checkerboard MLP (course check.py / check_main.py).

data: the nine points; model: R stacked 2 -> hid -> 1 nets; train: batched restarts with
the course's stopping rule; analysis: accuracy, margins, activation tables, dividing lines;
plots: the course's region maps.
"""
