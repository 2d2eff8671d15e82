"""An example team pack: what a team's own analyzers look like (`--pack casebook.examples.team_pack`)."""
