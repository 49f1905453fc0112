"""Study 1: the three KMNIST classifiers of the course (NetLin, NetFull, NetConv)."""
