"""Study 1: the three KMNIST classifiers of the course (NetLin, NetFull, NetConv).

``data``: fetching (md5-verified) and reading the IDX files; ``models`` and ``sizes``: the nets
and their sizes on paper; ``train``: the course's training loop and the train stage's study
function; ``analysis``: per-class accuracy and the most confused pairs; ``plots``: figures.
"""
