"""Agreement between crowdworkers, and with the labels: the figures and the researchers' pages."""
