"""The web dashboard's static files (static/): served by interlock.edge.ui, no build step."""
