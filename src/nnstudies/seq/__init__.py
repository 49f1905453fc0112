"""Study 3: grammars, recurrent nets trained as batched restarts, hidden-unit dynamics."""
